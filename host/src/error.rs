//! How the `tickq` command reports a failure: the whole chain of causes, and an exit code that tells a bad input
//! from an internal failure.
//!
//! | exit code | meaning |
//! |---|---|
//! | 0 | success |
//! | 1 | internal failure: writing an output failed (disk full, say), the GPU failed, or a bug in tickq |
//! | 2 | bad input: a file, config, option or data the user gave is wrong, missing or does not fit the rest |
//!
//! [`ErrorKind::of`] decides by walking the error's [`source`](std::error::Error::source) chain: an
//! [`std::io::Error`] anywhere decides by its kind ([`ErrorKind::of_io`]), a GPU failure or a blob tickq itself
//! encoded that does not load is internal, and everything else a host error enum reports is about its input.

use std::error::Error;
use std::fmt::Write as _;

/// Whether a failure is the user's input or tickq's own (see the [module docs](self) for the exit codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// A file, config, option or data the user gave is wrong or missing: exit code 2.
    BadInput,
    /// An output could not be written, the GPU failed, or tickq has a bug: exit code 1.
    Internal,
}

impl ErrorKind {
    /// The process exit code of this kind: 2 for [`ErrorKind::BadInput`], 1 for [`ErrorKind::Internal`].
    #[must_use]
    pub fn exit_code(self) -> u8 {
        match self {
            Self::BadInput => 2,
            Self::Internal => 1,
        }
    }

    /// The kind of an I/O error: a path that does not exist, cannot be opened, is the wrong kind of file or holds
    /// bytes that do not read is bad input; anything else (a full disk, a broken device) is internal.
    #[must_use]
    pub fn of_io(error: &std::io::Error) -> Self {
        use std::io::ErrorKind as K;
        match error.kind() {
            K::NotFound
            | K::PermissionDenied
            | K::AlreadyExists
            | K::InvalidInput
            | K::InvalidData
            | K::UnexpectedEof
            | K::IsADirectory
            | K::NotADirectory
            | K::FileTooLarge
            | K::InvalidFilename => Self::BadInput,
            _ => Self::Internal,
        }
    }

    /// The kind of `error`, found by walking it and its sources: the first cause that decides wins (an I/O
    /// error, a GPU failure, a blob tickq encoded that does not load, a report that could not be written);
    /// without one the error is about its input.
    #[must_use]
    pub fn of(error: &(dyn Error + 'static)) -> Self {
        let mut next = Some(error);
        while let Some(e) = next {
            if let Some(kind) = Self::decided_by(e) {
                return kind;
            }
            next = e.source();
        }
        Self::BadInput
    }

    /// The kind `e` itself decides, if it does.
    fn decided_by(e: &(dyn Error + 'static)) -> Option<Self> {
        use crate::pipeline::StagesError;
        use crate::quant::QuantError;
        use crate::steps::PipelineError;
        use crate::train::TrainError;
        // A boxed cause (`StagesError::Stage`) is its own type to `downcast_ref`: look inside.
        if let Some(p) = e.downcast_ref::<Box<PipelineError>>() {
            return Self::decided_by(&**p);
        }
        if let Some(io) = e.downcast_ref::<std::io::Error>() {
            return Some(Self::of_io(io));
        }
        if let Some(p) = e.downcast_ref::<PipelineError>() {
            return match p {
                PipelineError::Gpu(_)
                | PipelineError::JsonWrite { .. }
                | PipelineError::StageInput { .. }
                | PipelineError::ReplayMismatch { .. } => Some(Self::Internal),
                // `transparent` variants forward `source()` past themselves: look inside.
                PipelineError::Io(io) => Some(Self::of_io(io)),
                PipelineError::Data(d) => Self::decided_by(d),
                PipelineError::Quant(q) => Self::decided_by(q),
                PipelineError::Train(t) => Self::decided_by(t),
                PipelineError::Stages(s) => Self::decided_by(s),
                PipelineError::Export(x) => Self::decided_by(x),
                PipelineError::Distill(d) => Self::decided_by(d),
                _ => None,
            };
        }
        // The bundled data: a damaged binary, or no cache directory that takes its file.
        if let Some(
            crate::data::DataError::Bundled { .. } | crate::data::DataError::BundledCache { .. },
        ) = e.downcast_ref::<crate::data::DataError>()
        {
            return Some(Self::Internal);
        }
        if let Some(q) = e.downcast_ref::<QuantError>() {
            return matches!(q, QuantError::Load(_)).then_some(Self::Internal);
        }
        if let Some(x) = e.downcast_ref::<crate::export::ExportError>() {
            use crate::export::ExportError as X;
            return matches!(
                x,
                X::NoLayers | X::QuantizerEncode(_) | X::Arena(_) | X::QuantizedRunDisagrees { .. }
            )
            .then_some(Self::Internal);
        }
        if let Some(crate::distill::DistillError::Train(t)) =
            e.downcast_ref::<crate::distill::DistillError>()
        {
            return Self::decided_by(t);
        }
        if let Some(TrainError::Gpu(_) | TrainError::StateSerialize(_)) =
            e.downcast_ref::<TrainError>()
        {
            return Some(Self::Internal);
        }
        if let Some(
            StagesError::Output { .. } | StagesError::OutputJson { .. } | StagesError::Chart { .. },
        ) = e.downcast_ref::<StagesError>()
        {
            return Some(Self::Internal);
        }
        None
    }
}

/// The lines the `tickq` command prints for `error`: `error: ` and its message, then one `  caused by: ` line
/// per source whose text the lines before it do not already include (many messages embed their cause's text,
/// `stage \`t\` (train): …`, so it would otherwise print twice).
#[must_use]
pub fn report(error: &(dyn Error + 'static)) -> String {
    let mut shown = error.to_string();
    let mut out = format!("error: {shown}");
    let mut next = error.source();
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !shown.contains(&text) {
            let _ = write!(out, "\n  caused by: {text}");
            shown.push('\n');
            shown.push_str(&text);
        }
        next = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, thiserror::Error)]
    #[error("outer")]
    struct Outer(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("wrapping: {0}")]
    struct Embeds(#[source] Inner);

    #[derive(Debug, thiserror::Error)]
    #[error("inner")]
    struct Inner(#[source] std::io::Error);

    fn disk_full() -> std::io::Error {
        std::io::Error::new(std::io::ErrorKind::StorageFull, "no space left")
    }

    #[test]
    fn the_report_lists_each_cause_once() {
        assert_eq!(
            report(&Outer(Inner(disk_full()))),
            "error: outer\n  caused by: inner\n  caused by: no space left"
        );
        assert_eq!(
            report(&Embeds(Inner(disk_full()))),
            "error: wrapping: inner\n  caused by: no space left"
        );
    }

    #[test]
    fn an_io_error_in_the_chain_decides_the_kind() {
        assert_eq!(
            ErrorKind::of(&Outer(Inner(disk_full()))),
            ErrorKind::Internal
        );
        let missing = std::io::Error::from(std::io::ErrorKind::NotFound);
        assert_eq!(ErrorKind::of(&Outer(Inner(missing))), ErrorKind::BadInput);
        assert_eq!(ErrorKind::BadInput.exit_code(), 2);
        assert_eq!(ErrorKind::Internal.exit_code(), 1);
    }
}

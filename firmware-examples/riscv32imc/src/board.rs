//! What both binaries of this example share: the embedded model and the semihosting console.

/// The model: `BLOB` (16-byte aligned), `ARENA_BYTES` and, for a blob with a feature spec, `STATE_WORDS` and
/// `STREAM_ARENA_BYTES`, from `tickq export --format rust`.
#[allow(
    dead_code,
    reason = "the export defines every constant; each binary uses a few"
)]
pub mod model {
    include!(concat!(env!("OUT_DIR"), "/model.rs"));
}

/// Writes to the semihosting console.
pub struct Console(pub semihosting::io::Stdout);

impl core::fmt::Write for Console {
    fn write_str(&mut self, s: &str) -> core::fmt::Result {
        use semihosting::io::Write;
        self.0.write_all(s.as_bytes()).map_err(|_| core::fmt::Error)
    }
}

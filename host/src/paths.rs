//! Checks of output paths before any work: a command that will write a directory or a file says at once, naming
//! the path, when something already in the way makes that impossible, instead of failing after the work with the
//! operating system's bare "File exists" or "Not a directory".

use std::path::{Path, PathBuf};

/// Why an output path cannot be written.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum OutputPathError {
    /// The output directory exists as something else (a file, say).
    #[error(
        "{}: exists and is not a directory, so {what} cannot be written into it; give a new path or a directory",
        path.display()
    )]
    NotADirectory {
        /// The output path.
        path: PathBuf,
        /// What would be written, for the message (`report.md and report.json`).
        what: String,
    },
    /// The output file exists as a directory.
    #[error(
        "{}: is a directory, so {what} cannot be written there; give a file name",
        path.display()
    )]
    IsADirectory {
        /// The output path.
        path: PathBuf,
        /// What would be written.
        what: String,
    },
    /// A parent of the output path exists and is not a directory, so nothing can be created below it.
    #[error(
        "{}: {} exists and is not a directory, so nothing can be written below it",
        path.display(),
        parent.display()
    )]
    ParentNotADirectory {
        /// The output path.
        path: PathBuf,
        /// The first parent that is not a directory.
        parent: PathBuf,
    },
}

/// The check both kinds of output share: the nearest existing ancestor of `path` (not `path` itself) is a
/// directory, or there is none.
fn check_parent(path: &Path) -> Result<(), OutputPathError> {
    let blocking = path
        .ancestors()
        .skip(1)
        .filter(|p| !p.as_os_str().is_empty())
        .find(|p| p.exists())
        .filter(|p| !p.is_dir());
    match blocking {
        Some(parent) => Err(OutputPathError::ParentNotADirectory {
            path: path.to_path_buf(),
            parent: parent.to_path_buf(),
        }),
        None => Ok(()),
    }
}

/// Checks that `path` can be an output directory: it is one already, or it does not exist and its nearest existing
/// parent is a directory. `what` says what goes there, for the message.
///
/// # Errors
///
/// [`OutputPathError::NotADirectory`] or [`OutputPathError::ParentNotADirectory`].
pub fn check_output_dir(path: &Path, what: &str) -> Result<(), OutputPathError> {
    if path.exists() && !path.is_dir() {
        return Err(OutputPathError::NotADirectory {
            path: path.to_path_buf(),
            what: what.to_string(),
        });
    }
    check_parent(path)
}

/// Checks that `path` can be an output file: it is not a directory, and its nearest existing parent is one.
///
/// # Errors
///
/// [`OutputPathError::IsADirectory`] or [`OutputPathError::ParentNotADirectory`].
pub fn check_output_file(path: &Path, what: &str) -> Result<(), OutputPathError> {
    if path.is_dir() {
        return Err(OutputPathError::IsADirectory {
            path: path.to_path_buf(),
            what: what.to_string(),
        });
    }
    check_parent(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_and_directories_in_the_way_are_named() {
        let dir = std::env::temp_dir().join(format!("tickq-paths-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let file = dir.join("report.txt");
        std::fs::write(&file, b"x").unwrap();
        assert!(check_output_dir(&dir, "eval").is_ok());
        assert!(check_output_dir(&dir.join("new").join("deeper"), "eval").is_ok());
        let e = check_output_dir(&file, "report.md and report.json").unwrap_err();
        assert_eq!(
            e.to_string(),
            format!(
                "{}: exists and is not a directory, so report.md and report.json cannot be written into it; give a new path or a directory",
                file.display()
            )
        );
        let below = file.join("sub");
        assert_eq!(
            check_output_dir(&below, "x").unwrap_err(),
            OutputPathError::ParentNotADirectory {
                path: below.clone(),
                parent: file.clone(),
            }
        );
        assert!(matches!(
            check_output_file(&below, "x"),
            Err(OutputPathError::ParentNotADirectory { .. })
        ));
        assert!(matches!(
            check_output_file(&dir, "quantize"),
            Err(OutputPathError::IsADirectory { .. })
        ));
        assert!(check_output_file(&file, "x").is_ok());
        assert!(check_output_file(Path::new("relative-name.blob"), "x").is_ok());
        std::fs::remove_dir_all(&dir).unwrap();
    }
}

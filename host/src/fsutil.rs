//! File-system helpers: every file tickq writes goes through [`write_atomic`], and every directory that must
//! change as one unit (a checkpoint, a training state) goes through [`replace_dir`].
//!
//! What a reader can see, whenever the writer is interrupted (a crash, `kill -9`, a full disk):
//!
//! - [`write_atomic`]: the old file or the complete new one. The data goes to a temporary file beside the target,
//!   is flushed to disk and then renamed over the target.
//! - [`replace_dir`]: the old directory or the complete new one, never a mix of their files. The new files go into
//!   a fresh sibling directory, are flushed to disk, and the two directories are exchanged in one `rename`
//!   (`renameat2(RENAME_EXCHANGE)` on Linux, `renamex_np(RENAME_SWAP)` on macOS). Where the system or the file
//!   system cannot exchange directories, the old one is renamed aside first: an interruption between the two
//!   renames leaves no directory under the name, and the next [`replace_dir`] of it puts the old one back first.
//! - [`remove_dir_atomic`]: the whole directory or nothing under its name.
//!
//! Leftovers of an interrupted write are hidden siblings named `.NAME.tmp-PID` (and `.NAME.old-PID` for the
//! renamed-aside directory above). Readers ignore them; the next write of the same target removes those whose
//! process no longer runs (on other systems than Unix, only this process's own).
//!
//! # Crash points (a test hook)
//!
//! With the environment variable [`CRASH_ENV`] set to `POINT` or `POINT#N`, the process sends itself `SIGKILL`
//! (a real signal, which nothing can catch) the `N`-th time (default: the first) it reaches the crash point
//! `POINT`, one of [`CRASH_POINTS`]. The kill -9 tests use it to interrupt `tickq` exactly between two steps of a
//! write; without the variable the points cost one check of a cached value.

use std::ffi::{OsStr, OsString};
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::sync::atomic::{AtomicUsize, Ordering};

/// The environment variable that arms a crash point: `POINT` or `POINT#N` (see the module documentation).
pub const CRASH_ENV: &str = "TICKQ_CRASH_AT";

/// The crash points, in the order a write reaches them.
pub const CRASH_POINTS: [&str; 7] = [
    // write_atomic: half of the bytes are in the temporary file.
    "write-file:partial",
    // write_atomic: the temporary file is complete and synced, the target is not replaced yet.
    "write-file:before-rename",
    // write_atomic: the target is replaced.
    "write-file:after-rename",
    // replace_dir: the first file is in the staging directory.
    "replace-dir:partial",
    // replace_dir: the staging directory is complete and synced, the old directory is in place.
    "replace-dir:before-swap",
    // replace_dir: the new directory is in place, the old one (renamed to a leftover name) is not removed yet.
    "replace-dir:after-swap",
    // remove_dir_atomic: the directory is renamed aside, not yet removed.
    "remove-dir:after-rename",
];

/// Sends this process `SIGKILL` when [`CRASH_ENV`] names `point` and this is the chosen hit of it.
fn crash_point(point: &str) {
    static ARMED: OnceLock<Option<(String, usize)>> = OnceLock::new();
    static HITS: AtomicUsize = AtomicUsize::new(0);
    let armed = ARMED.get_or_init(|| {
        let spec = std::env::var(CRASH_ENV).ok()?;
        match spec.split_once('#') {
            None => Some((spec, 1)),
            Some((name, n)) => Some((name.to_string(), n.parse().ok()?)),
        }
    });
    let Some((name, nth)) = armed else {
        return;
    };
    if name == point && HITS.fetch_add(1, Ordering::SeqCst) + 1 == *nth {
        kill_self();
    }
}

/// Ends the process with `SIGKILL` (on Unix; elsewhere with [`std::process::abort`]).
fn kill_self() -> ! {
    #[cfg(unix)]
    {
        use rustix::process::{Signal, getpid, kill_process};
        // SIGKILL cannot be caught or ignored; the abort below only runs if the signal could not be sent.
        let _ = kill_process(getpid(), Signal::KILL);
    }
    std::process::abort()
}

/// An I/O error with `path` in front of its message.
fn with_path(path: &Path) -> impl Fn(io::Error) -> io::Error + '_ {
    move |e| io::Error::new(e.kind(), format!("{}: {e}", path.display()))
}

/// The directory holding `path` (`.` for a bare name) and the last component of `path`.
fn split(path: &Path) -> io::Result<(PathBuf, OsString)> {
    let name = path.file_name().ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: the path has no file name", path.display()),
        )
    })?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    Ok((parent, name.to_os_string()))
}

/// What a hidden leftover is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Leftover {
    /// `.NAME.tmp-PID`: a temporary file or staging directory, garbage once its process is gone.
    Temp,
    /// `.NAME.old-PID`: a complete old directory renamed aside by the fallback of [`replace_dir`].
    Old,
}

/// The leftover name `.NAME.tmp-PID` for `name` and this process.
fn temp_name(name: &OsStr, kind: Leftover) -> OsString {
    let mut s = OsString::from(".");
    s.push(name);
    s.push(match kind {
        Leftover::Temp => ".tmp-",
        Leftover::Old => ".old-",
    });
    s.push(std::process::id().to_string());
    s
}

/// Parses a leftover name: `.NAME.tmp-PID` gives `(NAME, Temp, PID)`, `.NAME.old-PID` gives `(NAME, Old, PID)`.
fn parse_leftover(entry: &OsStr) -> Option<(&str, Leftover, u32)> {
    let rest = entry.to_str()?.strip_prefix('.')?;
    let (name, tail) = rest.rsplit_once('.')?;
    let (kind, pid) = if let Some(pid) = tail.strip_prefix("tmp-") {
        (Leftover::Temp, pid)
    } else {
        (Leftover::Old, tail.strip_prefix("old-")?)
    };
    if name.is_empty() || pid.is_empty() || !pid.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((name, kind, pid.parse().ok()?))
}

/// Whether `entry` is a leftover of an interrupted write (of any target).
pub fn is_leftover(entry: &OsStr) -> bool {
    parse_leftover(entry).is_some()
}

/// Whether the leftover of process `pid` may be removed: it is this process's own (this process is not writing it
/// now) or, on Unix, no process `pid` runs any more.
fn stale(pid: u32) -> bool {
    if pid == std::process::id() {
        return true;
    }
    #[cfg(unix)]
    {
        use rustix::process::{Pid, test_kill_process};
        match i32::try_from(pid).ok().and_then(Pid::from_raw) {
            None => true,
            Some(p) => test_kill_process(p).is_err_and(|e| e == rustix::io::Errno::SRCH),
        }
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// Removes a file, a symbolic link or a whole directory tree; a missing path is not an error.
fn remove_any(path: &Path) -> io::Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(m) if m.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(with_path(path)(e)),
        _ => Ok(()),
    }
}

/// Removes the stale leftovers of `name` in `parent` and returns the stale renamed-aside old directories
/// ([`Leftover::Old`]), which the caller restores or removes.
fn clean_leftovers(parent: &Path, name: &OsStr) -> io::Result<Vec<PathBuf>> {
    let entries = match fs::read_dir(parent) {
        Ok(entries) => entries,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(with_path(parent)(e)),
    };
    let mut old = Vec::new();
    for entry in entries {
        let entry = entry.map_err(with_path(parent))?;
        let file_name = entry.file_name();
        let Some((target, kind, pid)) = parse_leftover(&file_name) else {
            continue;
        };
        if OsStr::new(target) != name || !stale(pid) {
            continue;
        }
        match kind {
            Leftover::Temp => remove_any(&entry.path())?,
            Leftover::Old => old.push(entry.path()),
        }
    }
    old.sort();
    Ok(old)
}

/// Flushes a directory's entries (new names, renames) to disk; a no-op where directories cannot be opened.
fn sync_dir(dir: &Path) -> io::Result<()> {
    #[cfg(unix)]
    {
        fs::File::open(dir)
            .and_then(|d| d.sync_all())
            .map_err(with_path(dir))
    }
    #[cfg(not(unix))]
    {
        let _ = dir;
        Ok(())
    }
}

/// Writes `bytes` to a new file at `path` and flushes it to disk, calling `halfway` after the first half.
fn write_synced(path: &Path, bytes: &[u8], halfway: impl FnOnce()) -> io::Result<()> {
    let mut file = fs::File::create(path)?;
    let (first, second) = bytes.split_at(bytes.len() / 2);
    file.write_all(first)?;
    halfway();
    file.write_all(second)?;
    file.sync_all()
}

/// Writes `bytes` to `path` atomically: the data goes to a temporary file in the
/// same directory, is flushed to disk, and is then renamed over `path`.
///
/// A reader (or a crash) sees either the old file or the complete new one, never
/// a half-written file. Parent directories are created when missing.
/// Temporary files left beside `path` by an interrupted earlier write are removed first.
///
/// # Errors
///
/// Returns the underlying I/O error, with the path in its message.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> io::Result<()> {
    let (dir, file_name) = split(path)?;
    fs::create_dir_all(&dir).map_err(with_path(path))?;
    // A renamed-aside directory of the same name is no concern of a file write; only temporary files are removed.
    clean_leftovers(&dir, &file_name)?;
    let tmp_path = dir.join(temp_name(&file_name, Leftover::Temp));
    let result = (|| {
        write_synced(&tmp_path, bytes, || crash_point("write-file:partial"))?;
        crash_point("write-file:before-rename");
        fs::rename(&tmp_path, path)?;
        crash_point("write-file:after-rename");
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp_path);
    }
    result.map_err(with_path(path))
}

/// Replaces the directory `dir` as one unit: afterwards it holds exactly `files` (name, bytes) plus the entries of
/// the old directory that are neither in `files` nor in `owned`, and a reader sees the old directory or the new one,
/// never a mix (see the module documentation).
///
/// `owned` names the files that belong to the unit although this write does not produce them, so that they are
/// dropped rather than kept (a checkpoint saved without `preprocess.json` loses an old one).
/// Kept entries (a training state in a checkpoint, a report) move over as hard links (copies where links fail),
/// directories recursively; leftovers of interrupted writes are not kept.
/// A symbolic link `dir` is followed: the directory it points to is replaced.
/// Parent directories are created when missing.
///
/// # Errors
///
/// The I/O error, with the path in its message; `dir` itself is then unchanged. The current directory or one of
/// its ancestors cannot be replaced ([`io::ErrorKind::InvalidInput`]), nor can a path whose last component is not
/// a name (`.`, `..`).
pub fn replace_dir(dir: &Path, files: &[(&str, &[u8])], owned: &[&str]) -> io::Result<()> {
    replace_dir_with(dir, files, owned, Swap::Exchange)
}

/// How [`replace_dir`] puts the new directory in place.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Swap {
    /// Exchange the two directories in one step where the system can, else [`Swap::TwoRenames`].
    Exchange,
    /// Rename the old directory aside, then the new one into place (the fallback, forced by tests).
    #[cfg_attr(
        not(test),
        allow(
            dead_code,
            reason = "outside the tests only `Exchange` falls back to it"
        )
    )]
    TwoRenames,
}

/// [`replace_dir`] with a chosen [`Swap`].
fn replace_dir_with(
    dir: &Path,
    files: &[(&str, &[u8])],
    owned: &[&str],
    swap: Swap,
) -> io::Result<()> {
    let resolved;
    let dir = match fs::symlink_metadata(dir) {
        Ok(m) if m.file_type().is_symlink() => {
            resolved = fs::canonicalize(dir).map_err(with_path(dir))?;
            resolved.as_path()
        }
        _ => dir,
    };
    let (parent, name) = split(dir)?;
    if name == "." || name == ".." {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("{}: give the directory a name of its own", dir.display()),
        ));
    }
    for (file, _) in files {
        if file.is_empty() || file.contains(['/', '\\']) || is_leftover(OsStr::new(file)) {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{}: `{file}` is not a plain file name", dir.display()),
            ));
        }
    }
    fs::create_dir_all(&parent).map_err(with_path(&parent))?;
    if let (Ok(here), Ok(target)) = (std::env::current_dir(), fs::canonicalize(dir))
        && here.starts_with(&target)
    {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!(
                "{}: cannot replace the current directory or one above it; write into a directory of its own",
                dir.display()
            ),
        ));
    }
    let old_aside = clean_leftovers(&parent, &name)?;
    let mut exists = match fs::symlink_metadata(dir) {
        Ok(m) if m.is_dir() => true,
        Ok(_) => {
            return Err(io::Error::new(
                io::ErrorKind::AlreadyExists,
                format!("{}: exists and is not a directory", dir.display()),
            ));
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => false,
        Err(e) => return Err(with_path(dir)(e)),
    };
    // An earlier fallback swap that stopped between its two renames left the old directory aside: put it back, so
    // that what it kept (a training state) survives, then replace it as usual.
    for old in old_aside {
        if exists {
            remove_any(&old)?;
        } else {
            fs::rename(&old, dir).map_err(with_path(dir))?;
            exists = true;
        }
    }
    let staging = parent.join(temp_name(&name, Leftover::Temp));
    let result = stage_and_swap(dir, &parent, &name, &staging, exists, files, owned, swap);
    if result.is_err() {
        let _ = remove_any(&staging);
    }
    result
}

/// The body of [`replace_dir`] once `dir` is resolved and its leftovers are handled.
#[allow(clippy::too_many_arguments)] // The resolved pieces of `replace_dir_with`'s arguments.
fn stage_and_swap(
    dir: &Path,
    parent: &Path,
    name: &OsStr,
    staging: &Path,
    exists: bool,
    files: &[(&str, &[u8])],
    owned: &[&str],
    swap: Swap,
) -> io::Result<()> {
    remove_any(staging)?;
    fs::create_dir(staging).map_err(with_path(staging))?;
    for (i, (file, bytes)) in files.iter().enumerate() {
        let path = staging.join(file);
        write_synced(&path, bytes, || {}).map_err(with_path(&path))?;
        if i == 0 {
            crash_point("replace-dir:partial");
        }
    }
    if exists {
        let keep = |entry: &OsStr| {
            !is_leftover(entry)
                && !files.iter().any(|(f, _)| OsStr::new(f) == entry)
                && !owned.iter().any(|f| OsStr::new(f) == entry)
        };
        for entry in fs::read_dir(dir).map_err(with_path(dir))? {
            let entry = entry.map_err(with_path(dir))?;
            let entry_name = entry.file_name();
            if keep(&entry_name) {
                link_tree(&entry.path(), &staging.join(&entry_name))?;
            }
        }
        let permissions = fs::metadata(dir).map_err(with_path(dir))?.permissions();
        fs::set_permissions(staging, permissions).map_err(with_path(staging))?;
    }
    sync_dir(staging)?;
    crash_point("replace-dir:before-swap");
    if !exists {
        fs::rename(staging, dir).map_err(with_path(dir))?;
        return sync_dir(parent);
    }
    if swap == Swap::Exchange && exchange(staging, dir).map_err(with_path(dir))? {
        sync_dir(parent)?;
        crash_point("replace-dir:after-swap");
        // The staging name now holds the old directory.
        return remove_any(staging);
    }
    // No exchange here: rename the old directory aside, the new one into place, and remove the old one.
    let aside = parent.join(temp_name(name, Leftover::Old));
    fs::rename(dir, &aside).map_err(with_path(dir))?;
    if let Err(e) = fs::rename(staging, dir) {
        // Put the old directory back; the caller removes the staging directory.
        let _ = fs::rename(&aside, dir);
        return Err(with_path(dir)(e));
    }
    sync_dir(parent)?;
    crash_point("replace-dir:after-swap");
    remove_any(&aside)
}

/// Recreates `src` at `dst` with hard links to its files (copies where a link fails), its symbolic links and its
/// directories, skipping leftovers of interrupted writes.
fn link_tree(src: &Path, dst: &Path) -> io::Result<()> {
    let meta = fs::symlink_metadata(src).map_err(with_path(src))?;
    let kind = meta.file_type();
    if kind.is_dir() {
        fs::create_dir(dst).map_err(with_path(dst))?;
        for entry in fs::read_dir(src).map_err(with_path(src))? {
            let entry = entry.map_err(with_path(src))?;
            if !is_leftover(&entry.file_name()) {
                link_tree(&entry.path(), &dst.join(entry.file_name()))?;
            }
        }
        fs::set_permissions(dst, meta.permissions()).map_err(with_path(dst))
    } else if kind.is_symlink() {
        let target = fs::read_link(src).map_err(with_path(src))?;
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(target, dst).map_err(with_path(dst))
        }
        #[cfg(not(unix))]
        {
            let _ = target;
            fs::copy(src, dst).map(drop).map_err(with_path(dst))
        }
    } else if fs::hard_link(src, dst).is_ok() {
        Ok(())
    } else {
        fs::copy(src, dst).map(drop).map_err(with_path(dst))
    }
}

/// Exchanges two directories in one step; `Ok(false)` where the system or the file system cannot.
#[cfg(any(target_os = "linux", target_os = "android", target_vendor = "apple"))]
fn exchange(a: &Path, b: &Path) -> io::Result<bool> {
    use rustix::fs::{CWD, RenameFlags, renameat_with};
    use rustix::io::Errno;
    match renameat_with(CWD, a, CWD, b, RenameFlags::EXCHANGE) {
        Ok(()) => Ok(true),
        Err(e) if [Errno::INVAL, Errno::NOSYS, Errno::NOTSUP, Errno::OPNOTSUPP].contains(&e) => {
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}

/// Exchanges two directories in one step; `Ok(false)` where the system or the file system cannot.
#[cfg(not(any(target_os = "linux", target_os = "android", target_vendor = "apple")))]
fn exchange(_a: &Path, _b: &Path) -> io::Result<bool> {
    Ok(false)
}

/// Removes the directory `dir` as one unit: it is renamed to a hidden leftover name first and then deleted, so an
/// interruption leaves the whole directory or nothing under its name. A missing `dir` is not an error.
///
/// # Errors
///
/// The I/O error, with the path in its message.
pub fn remove_dir_atomic(dir: &Path) -> io::Result<()> {
    let (parent, name) = split(dir)?;
    clean_leftovers(&parent, &name)?;
    let aside = parent.join(temp_name(&name, Leftover::Temp));
    match fs::rename(dir, &aside) {
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        other => other.map_err(with_path(dir))?,
    }
    sync_dir(&parent)?;
    crash_point("remove-dir:after-rename");
    remove_any(&aside)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(tag: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("tickq-fsutil-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        dir
    }

    /// The names in `dir`, sorted.
    fn names(dir: &Path) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    #[test]
    fn writes_and_replaces_without_leaving_temp_files() {
        let dir = scratch("write");
        let path = dir.join("nested").join("out.bin");
        write_atomic(&path, b"first").unwrap();
        write_atomic(&path, b"second").unwrap();
        assert_eq!(fs::read(&path).unwrap(), b"second");
        assert_eq!(names(path.parent().unwrap()), ["out.bin"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn leftover_names_parse() {
        fn p(s: &str) -> Option<(&str, Leftover, u32)> {
            parse_leftover(OsStr::new(s))
        }
        assert_eq!(
            p(".model.safetensors.tmp-123"),
            Some(("model.safetensors", Leftover::Temp, 123))
        );
        assert_eq!(
            p(".checkpoint.old-7"),
            Some(("checkpoint", Leftover::Old, 7))
        );
        for not in [
            "model.safetensors",
            ".tmp-12",
            ".a.tmp-",
            ".a.tmp-1x",
            "a.tmp-1",
            ".a.new-1",
        ] {
            assert_eq!(p(not), None, "{not}");
        }
    }

    /// Leftovers of a process that is gone (and this process's own) are removed by the next write of the same
    /// target; those of other targets and of running processes stay.
    #[test]
    fn stale_leftovers_are_removed_by_the_next_write() {
        let dir = scratch("stale");
        // A process id that cannot be running: above the kernel's maximum.
        let dead = 4_194_305 + u32::from(std::process::id() == 4_194_305);
        let ours = std::process::id();
        fs::write(dir.join(format!(".out.bin.tmp-{dead}")), b"half").unwrap();
        fs::write(dir.join(format!(".out.bin.tmp-{ours}")), b"half").unwrap();
        fs::write(dir.join(format!(".other.bin.tmp-{dead}")), b"x").unwrap();
        fs::create_dir(dir.join(format!(".ckpt.tmp-{dead}"))).unwrap();
        fs::write(
            dir.join(format!(".ckpt.tmp-{dead}/model.safetensors")),
            b"x",
        )
        .unwrap();
        let live = if cfg!(unix) {
            // Process 1 always runs.
            fs::write(dir.join(".out.bin.tmp-1"), b"busy").unwrap();
            vec![".out.bin.tmp-1".to_string()]
        } else {
            Vec::new()
        };
        write_atomic(&dir.join("out.bin"), b"new").unwrap();
        let mut expected = live.clone();
        expected.extend([
            format!(".ckpt.tmp-{dead}"),
            format!(".other.bin.tmp-{dead}"),
            "out.bin".to_string(),
        ]);
        expected.sort();
        assert_eq!(names(&dir), expected);
        replace_dir(&dir.join("ckpt"), &[("a", b"1")], &[]).unwrap();
        assert!(!dir.join(format!(".ckpt.tmp-{dead}")).exists());
        assert_eq!(names(&dir.join("ckpt")), ["a"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn replace_dir_swaps_the_whole_directory_and_keeps_foreign_entries() {
        let dir = scratch("swap");
        let ckpt = dir.join("ckpt");
        replace_dir(&ckpt, &[("w", b"w1"), ("a", b"a1"), ("p", b"p1")], &[]).unwrap();
        assert_eq!(names(&ckpt), ["a", "p", "w"]);
        // Entries of other writers stay, with their contents, and nested directories too.
        fs::create_dir(ckpt.join("state")).unwrap();
        fs::write(ckpt.join("state").join("s"), b"s1").unwrap();
        fs::write(ckpt.join("report.json"), b"r1").unwrap();
        fs::write(ckpt.join(".w.tmp-1"), b"someone else's temp file").unwrap();
        let before = fs::metadata(&ckpt).unwrap().permissions();
        replace_dir(&ckpt, &[("w", b"w2"), ("a", b"a2")], &["p"]).unwrap();
        assert_eq!(names(&ckpt), ["a", "report.json", "state", "w"]);
        assert_eq!(fs::read(ckpt.join("w")).unwrap(), b"w2");
        assert_eq!(fs::read(ckpt.join("state").join("s")).unwrap(), b"s1");
        assert_eq!(fs::read(ckpt.join("report.json")).unwrap(), b"r1");
        assert_eq!(fs::metadata(&ckpt).unwrap().permissions(), before);
        // Nothing is left beside it.
        assert_eq!(names(&dir), ["ckpt"]);
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn replace_dir_follows_a_symlink_and_refuses_what_it_cannot_replace() {
        let dir = scratch("refuse");
        let file = dir.join("file");
        fs::write(&file, b"x").unwrap();
        let e = replace_dir(&file, &[("a", b"1")], &[]).unwrap_err();
        assert!(e.to_string().contains("not a directory"), "{e}");
        let e = replace_dir(&dir.join("d"), &[("../a", b"1")], &[]).unwrap_err();
        assert!(e.to_string().contains("not a plain file name"), "{e}");
        let e = replace_dir(Path::new("."), &[("a", b"1")], &[]).unwrap_err();
        assert_eq!(e.kind(), io::ErrorKind::InvalidInput, "{e}");
        let here = std::env::current_dir().unwrap();
        let e = replace_dir(&here, &[("a", b"1")], &[]).unwrap_err();
        assert!(e.to_string().contains("current directory"), "{e}");
        #[cfg(unix)]
        {
            let real = dir.join("real");
            replace_dir(&real, &[("a", b"1")], &[]).unwrap();
            std::os::unix::fs::symlink(&real, dir.join("link")).unwrap();
            replace_dir(&dir.join("link"), &[("a", b"2")], &[]).unwrap();
            assert!(fs::symlink_metadata(dir.join("link")).unwrap().is_symlink());
            assert_eq!(fs::read(real.join("a")).unwrap(), b"2");
        }
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn the_two_rename_fallback_gives_the_same_directory() {
        let dir = scratch("fallback");
        let ckpt = dir.join("ckpt");
        replace_dir_with(&ckpt, &[("w", b"w1")], &[], Swap::TwoRenames).unwrap();
        fs::write(ckpt.join("kept"), b"k").unwrap();
        replace_dir_with(&ckpt, &[("w", b"w2")], &[], Swap::TwoRenames).unwrap();
        assert_eq!(names(&dir), ["ckpt"]);
        assert_eq!(names(&ckpt), ["kept", "w"]);
        assert_eq!(fs::read(ckpt.join("w")).unwrap(), b"w2");
        fs::remove_dir_all(&dir).unwrap();
    }

    /// The fallback's interruption between its two renames leaves the old directory aside; the next replace puts it
    /// back (with what it kept) before replacing it.
    #[test]
    fn an_old_directory_left_aside_is_restored_by_the_next_replace() {
        let dir = scratch("aside");
        let dead = 4_194_305 + u32::from(std::process::id() == 4_194_305);
        let aside = dir.join(format!(".ckpt.old-{dead}"));
        fs::create_dir(&aside).unwrap();
        fs::write(aside.join("w"), b"old").unwrap();
        fs::write(aside.join("kept"), b"k").unwrap();
        replace_dir(&dir.join("ckpt"), &[("w", b"new")], &[]).unwrap();
        assert_eq!(names(&dir), ["ckpt"]);
        assert_eq!(names(&dir.join("ckpt")), ["kept", "w"]);
        assert_eq!(fs::read(dir.join("ckpt").join("w")).unwrap(), b"new");
        fs::remove_dir_all(&dir).unwrap();
    }

    #[test]
    fn remove_dir_atomic_removes_everything_and_tolerates_absence() {
        let dir = scratch("remove");
        let d = dir.join("state");
        fs::create_dir_all(d.join("sub")).unwrap();
        fs::write(d.join("sub").join("f"), b"x").unwrap();
        remove_dir_atomic(&d).unwrap();
        remove_dir_atomic(&d).unwrap();
        assert!(names(&dir).is_empty());
        fs::remove_dir_all(&dir).unwrap();
    }
}

//! The files a run writes (`--json FILE`, `--hgrm PATH`'s two): each
//! checked before the load, so that a path loadgen cannot write is one line
//! and exit 2 before the run, not a run lost at its end (`--json
//! /missing/dir/x.json` used to measure for the whole `--duration`, then
//! fail).
//!
//! A file is written to a hidden file created beside it before the load
//! starts (`.x.json.AbC123.partial`: the same folder, so the same filesystem),
//! and renamed over it once it is complete (rename(2) replaces it in one
//! step). Creating that file is the check: the folder exists and loadgen may
//! create files in it. And an existing file is untouched until the new one
//! is whole: a run that fails (a usage error found later, a load thread that
//! fails) leaves it as it was, where opening it early with `O_TRUNC` would
//! have emptied it, and a reader (the renderer, a script, a plotter) never
//! sees half a report. The hidden file does not end in `.json`, so the
//! renderer never reads it; it is removed when loadgen fails, and only a signal
//! that ends loadgen leaves it behind.
//!
//! A path that is a symbolic link is written through: the file it points to is
//! replaced (or created), the link kept. One that is not a regular file (`/dev/stdout`, a pipe) cannot be
//! replaced: it is checked for writing before the load and written in place
//! at the end, as before.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

use anyhow::Context;
use cluster::cli::UsageError;
use nix::unistd::AccessFlags;
use tempfile::NamedTempFile;

/// A file of a run (`--json FILE`, `--hgrm PATH`), checked and ready to be
/// written.
#[derive(Debug)]
pub struct OutputFile {
    /// The path given.
    path: PathBuf,
    /// Where the bytes are written.
    target: Target,
}

/// How the bytes reach the path.
#[derive(Debug)]
enum Target {
    /// Written to `partial`, renamed over `file` (the path, its symbolic
    /// links resolved).
    Replace {
        file: PathBuf,
        partial: NamedTempFile,
    },
    /// A device or a pipe: written in place.
    InPlace,
}

impl OutputFile {
    /// Checks that a file can be written to `path`, given with `flag`
    /// (`--json`, named in the error), and creates the hidden file it will
    /// be written to: an error is a [`UsageError`] naming why.
    pub fn create(flag: &str, path: &Path) -> Result<OutputFile, UsageError> {
        let refuse = |why: String| UsageError(format!("{flag} {}: {why}", path.display()));
        let file = match std::fs::metadata(path) {
            Ok(meta) if meta.is_dir() => return Err(refuse("is a folder".to_owned())),
            Ok(meta) if !meta.is_file() => {
                nix::unistd::access(path, AccessFlags::W_OK)
                    .map_err(|err| refuse(format!("cannot write it: {}", err.desc())))?;
                return Ok(OutputFile {
                    path: path.to_owned(),
                    target: Target::InPlace,
                });
            }
            // A regular file: it is replaced only if it could be written.
            Ok(_) => {
                nix::unistd::access(path, AccessFlags::W_OK)
                    .map_err(|err| refuse(format!("cannot write it: {}", err.desc())))?;
                resolve_links(path).map_err(|err| refuse(err.to_string()))?
            }
            // ENOENT: a new file (or a link to one); ENOTDIR: a file on the
            // way, said below.
            Err(err)
                if matches!(
                    err.kind(),
                    std::io::ErrorKind::NotFound | std::io::ErrorKind::NotADirectory
                ) =>
            {
                resolve_links(path).map_err(|err| refuse(err.to_string()))?
            }
            // EACCES: a folder on the way that loadgen may not search.
            Err(err) => return Err(refuse(err.to_string())),
        };
        let name = file
            .file_name()
            .ok_or_else(|| refuse("not a file name".to_owned()))?;
        let folder = match file.parent() {
            Some(folder) if !folder.as_os_str().is_empty() => folder,
            _ => Path::new("."),
        };
        match std::fs::metadata(folder) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => return Err(refuse(format!("{} is not a folder", folder.display()))),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
                return Err(refuse(format!("no folder {}", folder.display())));
            }
            Err(err) if err.kind() == std::io::ErrorKind::NotADirectory => {
                return Err(refuse(format!("{} is not a folder", folder.display())));
            }
            Err(err) => return Err(refuse(format!("{}: {err}", folder.display()))),
        }
        // EACCES: not ours to write in; EROFS: a read-only filesystem.
        nix::unistd::access(folder, AccessFlags::W_OK | AccessFlags::X_OK).map_err(|err| {
            refuse(format!(
                "cannot create a file in {}: {}",
                folder.display(),
                err.desc()
            ))
        })?;
        let partial = tempfile::Builder::new()
            .prefix(&format!(".{}.", name.to_string_lossy()))
            .suffix(".partial")
            // What std::fs::write gives a new file (the umask applies); the
            // temporary file's default, 0600, would hide the report from others.
            .permissions(std::fs::Permissions::from_mode(0o666))
            .tempfile_in(folder)
            .map_err(|err| {
                refuse(format!(
                    "cannot create a file in {}: {err}",
                    folder.display()
                ))
            })?;
        Ok(OutputFile {
            path: path.to_owned(),
            target: Target::Replace { file, partial },
        })
    }

    /// The path given.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Writes `bytes` and puts them in place.
    pub fn write(self, bytes: &[u8]) -> anyhow::Result<()> {
        let write = || format!("write {}", self.path.display());
        match self.target {
            Target::InPlace => std::fs::write(&self.path, bytes).with_context(write),
            Target::Replace { file, mut partial } => {
                partial.write_all(bytes).with_context(write)?;
                // On disk before the rename, so that a crash leaves the old
                // report or the new one, never an empty file.
                partial.as_file().sync_all().with_context(write)?;
                partial
                    .persist(&file)
                    .map(drop)
                    .map_err(|err| err.error)
                    .with_context(write)
            }
        }
    }
}

/// The file `path` names once its symbolic links are followed, as open(2)
/// follows them, even to a file that does not exist yet; the folders on the
/// way are kept as they are (a rename in a folder reached through a link is
/// a rename in that folder).
fn resolve_links(path: &Path) -> std::io::Result<PathBuf> {
    /// As many links as the kernel follows before ELOOP.
    const MAX_LINKS: usize = 40;
    let mut file = path.to_owned();
    for _ in 0..MAX_LINKS {
        match std::fs::symlink_metadata(&file) {
            Ok(meta) if meta.file_type().is_symlink() => {
                let target = std::fs::read_link(&file)?;
                file = match file.parent() {
                    Some(folder) => folder.join(target),
                    None => target,
                };
            }
            // Not a link, or nothing there yet.
            _ => return Ok(file),
        }
    }
    Err(std::io::Error::from_raw_os_error(libc::ELOOP))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A folder that does not exist, a path that is a folder, a file in a
    /// folder that is a file: refused, and nothing is created.
    #[test]
    fn refuses_what_cannot_be_written() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("x.json");
        std::fs::write(&file, "old").expect("write");
        for (path, why) in [
            (dir.path().join("missing/x.json"), "no folder"),
            (dir.path().to_owned(), "is a folder"),
            (file.join("y.json"), "not a folder"),
        ] {
            let err = OutputFile::create("--json", &path).expect_err("refused");
            assert!(err.0.contains(why), "{path:?}: {}", err.0);
            assert!(err.0.starts_with("--json "), "{}", err.0);
        }
        let names: Vec<_> = std::fs::read_dir(dir.path())
            .expect("list")
            .map(|entry| entry.expect("entry").file_name())
            .collect();
        assert_eq!(names, ["x.json"]);
    }

    /// A report replaces an existing file whole and leaves nothing beside
    /// it; through a symbolic link, even a dangling one, it is the file the
    /// link names that is written, and the link stays.
    #[test]
    fn a_report_replaces_the_file_whole_and_writes_through_links() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("x.json");
        std::fs::write(&file, "old").expect("write");
        OutputFile::create("--json", &file)
            .expect("writable")
            .write(b"{}")
            .expect("written");
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "{}");
        let link = dir.path().join("link.json");
        std::os::unix::fs::symlink("y.json", &link).expect("symlink");
        OutputFile::create("--json", &link)
            .expect("writable")
            .write(b"[]")
            .expect("written");
        assert!(
            std::fs::symlink_metadata(&link)
                .expect("link")
                .file_type()
                .is_symlink()
        );
        let written = dir.path().join("y.json");
        assert_eq!(std::fs::read_to_string(written).expect("read"), "[]");
        assert_eq!(std::fs::read_dir(dir.path()).expect("list").count(), 3);
    }

    /// The hidden file is created at once, and dropped without a write (a run
    /// that failed) it is removed and the existing file is as it was.
    #[test]
    fn a_failed_run_leaves_the_existing_file_as_it_was() {
        let dir = tempfile::tempdir().expect("temp dir");
        let file = dir.path().join("x.json");
        std::fs::write(&file, "old").expect("write");
        let json = OutputFile::create("--json", &file).expect("writable");
        let listed = || std::fs::read_dir(dir.path()).expect("list").count();
        assert_eq!(listed(), 2, "no hidden file beside x.json");
        drop(json);
        assert_eq!(listed(), 1);
        assert_eq!(std::fs::read_to_string(&file).expect("read"), "old");
    }
}

//! Unpacking a function's code zip into a directory of its own, safely: no entry may land outside
//! it (absolute paths, `..`, symbolic links), and a zip may not expand past the limits below.
//! Unix permission bits are kept, so a `provided` runtime's `bootstrap` stays executable.
//!
//! Each unpacking gets a fresh directory (`<code root>/<function>/<revision>-<random>`); a
//! [`CodeDir`] removes its directory when the last deployment using it is dropped, so a
//! redeploy or a delete removes the old code once the invocations running on it have finished.

use std::fs::{self, OpenOptions};
use std::io::{self, Cursor, Read, Write};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// How far a zip may expand.
#[derive(Clone, Copy, Debug)]
struct Limits {
    /// Total bytes of all files, as inflated (not as the headers claim).
    max_bytes: u64,
    /// Entries, directories included.
    max_entries: usize,
}

impl Limits {
    /// Lambda's 250 MiB of unpacked code, and more entries than any real function has.
    const LAMBDA: Limits = Limits {
        max_bytes: 250 * 1024 * 1024,
        max_entries: 10_000,
    };
}

/// Why a zip could not be unpacked.
#[derive(Debug, thiserror::Error)]
pub(crate) enum UnpackError {
    /// The zip itself is at fault; the message says how.
    #[error("{0}")]
    BadCode(String),
    /// The host could not write the files.
    #[error("{0}")]
    Io(#[from] io::Error),
}

fn bad(message: impl Into<String>) -> UnpackError {
    UnpackError::BadCode(message.into())
}

/// An unpacked code directory, removed when dropped.
#[derive(Debug)]
pub(crate) struct CodeDir {
    path: PathBuf,
    /// The zip's `CodeSha256`: deployments of the same code share the directory.
    code_sha256: String,
}

impl CodeDir {
    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    pub(crate) fn code_sha256(&self) -> &str {
        &self.code_sha256
    }
}

impl Drop for CodeDir {
    fn drop(&mut self) {
        let path = std::mem::take(&mut self.path);
        let remove = move || {
            if let Err(e) = fs::remove_dir_all(&path)
                && e.kind() != io::ErrorKind::NotFound
            {
                tracing::warn!(path = %path.display(), error = %e, "could not remove old function code");
            }
        };
        // Removing a tree is blocking IO: keep it off the async workers when there are some.
        match tokio::runtime::Handle::try_current() {
            Ok(handle) => drop(handle.spawn_blocking(remove)),
            Err(_) => remove(),
        }
    }
}

/// Unpacks `zip` into a new directory under `function_dir` named after `revision`, and removes
/// every other entry of `function_dir` except the paths in `keep` (code still in use, whose
/// [`CodeDir`]s remove it later). Blocking: run it on a blocking thread.
pub(crate) fn unpack(
    zip: &[u8],
    function_dir: &Path,
    revision: &str,
    code_sha256: &str,
    keep: &[PathBuf],
) -> Result<CodeDir, UnpackError> {
    fs::create_dir_all(function_dir)?;
    // Leftovers of earlier deployments (and of an earlier process) go first.
    for entry in fs::read_dir(function_dir)? {
        let path = entry?.path();
        if !keep.contains(&path) {
            remove_any(&path)?;
        }
    }
    let name = format!("{}-{}", path_safe(revision), ferrule_pki::random_hex(4));
    let path = function_dir.join(name);
    fs::create_dir(&path)?;
    // From here on the directory is removed on any failure.
    let dir = CodeDir {
        path,
        code_sha256: code_sha256.to_owned(),
    };
    extract(zip, dir.path(), Limits::LAMBDA)?;
    Ok(dir)
}

fn remove_any(path: &Path) -> io::Result<()> {
    let result = match fs::symlink_metadata(path) {
        Ok(meta) if meta.is_dir() => fs::remove_dir_all(path),
        Ok(_) => fs::remove_file(path),
        Err(e) => Err(e),
    };
    match result {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e),
        _ => Ok(()),
    }
}

/// Revision ids are UUIDs; anything else is reduced to a harmless directory name.
fn path_safe(revision: &str) -> String {
    let safe: String = revision
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-' || *c == '_')
        .take(64)
        .collect();
    if safe.is_empty() {
        "code".to_owned()
    } else {
        safe
    }
}

/// Extracts every entry into `dest`, which must be empty.
fn extract(zip: &[u8], dest: &Path, limits: Limits) -> Result<(), UnpackError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(zip))
        .map_err(|e| bad(format!("the code is not a valid zip file: {e}")))?;
    if archive.len() > limits.max_entries {
        return Err(bad(format!(
            "the zip has {} entries; at most {} are allowed",
            archive.len(),
            limits.max_entries
        )));
    }
    let mut total: u64 = 0;
    for index in 0..archive.len() {
        let mut entry = archive
            .by_index(index)
            .map_err(|e| bad(format!("zip entry {index} cannot be read: {e}")))?;
        let name = entry
            .name()
            .map_err(|e| bad(format!("zip entry #{index} has an unreadable name: {e}")))?
            .into_owned();
        let label = format!("{name:?}");
        // `enclosed_name` refuses `..` escapes but quietly makes absolute names relative; an
        // absolute name is a mistake (or an attack) either way.
        let absolute = name.starts_with(['/', '\\'])
            || name
                .as_bytes()
                .get(1..3)
                .is_some_and(|drive| drive == b":/" || drive == b":\\");
        let Some(relative) = entry.enclosed_name().filter(|_| !absolute) else {
            return Err(bad(format!(
                "zip entry {label} would be written outside the code directory"
            )));
        };
        if relative.as_os_str().is_empty() {
            continue;
        }
        let target = dest.join(&relative);
        if entry.is_symlink() {
            return Err(bad(format!(
                "zip entry {label} is a symbolic link; links are not supported"
            )));
        }
        if entry.is_dir() {
            create_dirs(dest, &target)?;
            continue;
        }
        if let Some(parent) = target.parent() {
            create_dirs(dest, parent)?;
        }
        // Exec bits are what matters (a `bootstrap`, a bundled binary); everything stays
        // readable by the worker and removable by us.
        let mode = 0o644 | (entry.unix_mode().unwrap_or(0) & 0o111);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(mode)
            .open(&target)
            .map_err(|e| match e.kind() {
                io::ErrorKind::AlreadyExists => bad(format!("zip entry {label} appears twice")),
                _ => UnpackError::Io(e),
            })?;
        // The sizes in the zip's headers may lie: count what is actually inflated.
        let remaining = limits.max_bytes - total;
        let mut limited = (&mut entry).take(remaining + 1);
        let written = copy(&mut limited, &mut file, &label)?;
        if written > remaining {
            return Err(bad(format!(
                "the unpacked code exceeds {} bytes",
                limits.max_bytes
            )));
        }
        total += written;
        // `mode` on open is filtered by the umask; set it exactly.
        file.set_permissions(fs::Permissions::from_mode(mode))?;
    }
    Ok(())
}

/// Like `io::copy`, but a read failure (corrupt data, bad checksum) is the zip's fault while a
/// write failure is the host's.
fn copy(reader: &mut impl Read, writer: &mut fs::File, entry: &str) -> Result<u64, UnpackError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut total = 0u64;
    loop {
        let n = match reader.read(&mut buf) {
            Ok(0) => return Ok(total),
            Ok(n) => n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(bad(format!("zip entry {entry} cannot be inflated: {e}"))),
        };
        writer.write_all(&buf[..n])?;
        total += n as u64;
    }
}

/// Creates `dir` and its missing parents below `root`, refusing to go through anything that is
/// not a real directory (a file or link planted by an earlier entry).
fn create_dirs(root: &Path, dir: &Path) -> Result<(), UnpackError> {
    let Ok(relative) = dir.strip_prefix(root) else {
        return Err(bad(format!(
            "{} is outside the code directory",
            dir.display()
        )));
    };
    let mut current = root.to_path_buf();
    for component in relative.components() {
        current.push(component);
        match fs::symlink_metadata(&current) {
            Ok(meta) if meta.is_dir() => {}
            Ok(_) => {
                return Err(bad(format!(
                    "zip entry {} is both a file and a directory",
                    relative.display()
                )));
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                fs::create_dir(&current)?;
                fs::set_permissions(&current, fs::Permissions::from_mode(0o755))?;
            }
            Err(e) => return Err(UnpackError::Io(e)),
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use zip::write::SimpleFileOptions;

    fn zip(files: &[(&str, &[u8], u32)]) -> Vec<u8> {
        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, data, mode) in files {
            let options = SimpleFileOptions::default()
                .compression_method(zip::CompressionMethod::Deflated)
                .unix_permissions(*mode);
            if name.ends_with('/') {
                writer.add_directory(*name, options).unwrap();
            } else {
                writer.start_file(*name, options).unwrap();
                writer.write_all(data).unwrap();
            }
        }
        writer.finish().unwrap().into_inner()
    }

    const SMALL: Limits = Limits {
        max_bytes: 1000,
        max_entries: 3,
    };

    fn bad_code(result: Result<(), UnpackError>) -> String {
        match result {
            Err(UnpackError::BadCode(message)) => message,
            other => panic!("expected bad code, got {other:?}"),
        }
    }

    #[test]
    fn extracts_files_and_directories_keeping_exec_bits() {
        let dir = tempfile::tempdir().unwrap();
        let zip = zip(&[
            ("bin/", b"", 0o755),
            ("bin/run", b"#!/bin/sh\n", 0o755),
            ("lib/deep/data.txt", b"data", 0o600),
        ]);
        extract(&zip, dir.path(), SMALL).unwrap();
        let mode = |p: &str| {
            fs::metadata(dir.path().join(p))
                .unwrap()
                .permissions()
                .mode()
                & 0o777
        };
        assert_eq!(mode("bin/run"), 0o755);
        assert_eq!(mode("lib/deep/data.txt"), 0o644);
        assert_eq!(mode("lib/deep"), 0o755);
        assert_eq!(
            fs::read(dir.path().join("lib/deep/data.txt")).unwrap(),
            b"data"
        );
    }

    #[test]
    fn size_is_counted_as_inflated() {
        let dir = tempfile::tempdir().unwrap();
        let exactly = zip(&[("a", &[0u8; 600], 0o644), ("b", &[0u8; 400], 0o644)]);
        extract(&exactly, dir.path(), SMALL).unwrap();
        let dir = tempfile::tempdir().unwrap();
        let over = zip(&[("a", &[0u8; 600], 0o644), ("b", &[0u8; 401], 0o644)]);
        let message = bad_code(extract(&over, dir.path(), SMALL));
        assert!(message.contains("exceeds 1000 bytes"), "{message}");
    }

    #[test]
    fn too_many_entries_duplicates_and_links_are_refused() {
        let dir = tempfile::tempdir().unwrap();
        let many = zip(&[
            ("a", b"", 0o644),
            ("b", b"", 0o644),
            ("c", b"", 0o644),
            ("d", b"", 0o644),
        ]);
        assert!(bad_code(extract(&many, dir.path(), SMALL)).contains("4 entries"));

        let mut writer = zip::ZipWriter::new(Cursor::new(Vec::new()));
        writer
            .add_symlink("link", "/etc", SimpleFileOptions::default())
            .unwrap();
        let link = writer.finish().unwrap().into_inner();
        let dir = tempfile::tempdir().unwrap();
        assert!(bad_code(extract(&link, dir.path(), SMALL)).contains("symbolic link"));
        assert!(fs::symlink_metadata(dir.path().join("link")).is_err());

        // A file where a later entry needs a directory.
        let dir = tempfile::tempdir().unwrap();
        let clash = zip(&[("a", b"x", 0o644), ("a/b", b"y", 0o644)]);
        assert!(
            bad_code(extract(&clash, dir.path(), SMALL)).contains("both a file and a directory")
        );
    }

    #[test]
    fn unpack_replaces_leftovers_but_keeps_code_in_use() {
        let root = tempfile::tempdir().unwrap();
        let function_dir = root.path().join("f");
        let zip = zip(&[("handler.py", b"x = 1", 0o644)]);
        let first = unpack(&zip, &function_dir, "rev-1", "sha", &[]).unwrap();
        assert!(first.path().starts_with(&function_dir));
        let leftover = function_dir.join("stale-from-before");
        fs::create_dir(&leftover).unwrap();
        let second = unpack(
            &zip,
            &function_dir,
            "../rev/2",
            "sha",
            &[first.path().to_owned()],
        )
        .unwrap();
        assert!(first.path().join("handler.py").exists());
        assert!(!leftover.exists());
        assert!(second.path().parent() == Some(function_dir.as_path()));
        let (first_path, second_path) = (first.path().to_owned(), second.path().to_owned());
        drop(first);
        drop(second);
        assert!(!first_path.exists() && !second_path.exists());
        // A bad zip leaves nothing behind.
        assert!(matches!(
            unpack(b"not a zip", &function_dir, "rev-3", "sha", &[]),
            Err(UnpackError::BadCode(_))
        ));
        assert_eq!(fs::read_dir(&function_dir).unwrap().count(), 0);
    }
}

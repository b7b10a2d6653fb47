//! Writing key and certificate files safely, and reading them back as checked pairs. Shared
//! by the development PKI and the issuing CA.

use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use crate::error::PkiError;
use crate::pem;

/// Reads a certificate file and its key file, checks that they belong together, and returns
/// both as PEM text.
pub(crate) fn load_pair(cert_path: &Path, key_path: &Path) -> Result<(String, String), PkiError> {
    let cert_what = cert_path.display().to_string();
    let key_what = key_path.display().to_string();
    let cert_pem = pem::read(cert_path)?;
    let key_pem = pem::read(key_path)?;
    let chain = pem::parse_cert_chain(&cert_pem, &cert_what)?;
    let key = pem::parse_private_key(&key_pem, &key_what)?;
    pem::check_key_matches(&chain, &key, &cert_what, &key_what)?;
    // Parsing succeeded, so the PEM sections are ASCII; anything lossy is text around them.
    Ok((
        String::from_utf8_lossy(&cert_pem).into_owned(),
        String::from_utf8_lossy(&key_pem).into_owned(),
    ))
}

pub(crate) fn exists(path: &Path) -> Result<bool, PkiError> {
    path.try_exists().map_err(|source| PkiError::Io {
        operation: "check for",
        path: path.to_path_buf(),
        source,
    })
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Secret {
    Yes,
    No,
}

/// Writes every file under a temporary name first, then renames them into place in order, so
/// each file is either absent or complete.
pub(crate) fn write_files(
    dir: &Path,
    files: &[(&PathBuf, &String, Secret)],
) -> Result<(), PkiError> {
    let mut staged = Vec::with_capacity(files.len());
    for &(path, contents, secret) in files {
        let tmp = temporary_name(path);
        write_file(&tmp, contents.as_bytes(), secret)?;
        staged.push((tmp, path));
    }
    for (tmp, path) in staged {
        fs::rename(&tmp, path).map_err(|source| PkiError::Io {
            operation: "rename into place",
            path: tmp.clone(),
            source,
        })?;
    }
    sync_dir(dir)
}

fn temporary_name(path: &Path) -> PathBuf {
    let mut name = std::ffi::OsString::from(".");
    name.push(path.file_name().unwrap_or_default());
    name.push(".tmp");
    path.with_file_name(name)
}

fn write_file(path: &Path, contents: &[u8], secret: Secret) -> Result<(), PkiError> {
    let io_error = |operation| {
        move |source| PkiError::Io {
            operation,
            path: path.to_path_buf(),
            source,
        }
    };
    let mut options = OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    if secret == Secret::Yes {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path).map_err(io_error("create"))?;
    // `mode` applies only when the file is created; a leftover temporary file keeps its own.
    #[cfg(unix)]
    if secret == Secret::Yes {
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(fs::Permissions::from_mode(0o600))
            .map_err(io_error("set permissions of"))?;
    }
    file.write_all(contents).map_err(io_error("write"))?;
    file.sync_all().map_err(io_error("flush"))
}

/// Makes the renames durable. Only meaningful (and only possible) on Unix.
fn sync_dir(dir: &Path) -> Result<(), PkiError> {
    #[cfg(unix)]
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(|source| PkiError::Io {
            operation: "flush the directory",
            path: dir.to_path_buf(),
            source,
        })?;
    #[cfg(not(unix))]
    let _ = dir;
    Ok(())
}

//! Generated admin credentials, kept in an AWS shared-credentials file so the aws CLI and boto3
//! can use it as it is (`AWS_SHARED_CREDENTIALS_FILE=DATA_DIR/credentials`).
//!
//! Blocking file IO: call it at startup.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::Credential;

/// Why the credentials file could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum CredentialsFileError {
    /// Reading or writing failed.
    #[error("cannot {operation} {}: {source}", path.display())]
    Io {
        /// What was being done.
        operation: &'static str,
        /// The file.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// The file exists but has no `[default]` profile with both keys.
    #[error(
        "{} has no [default] profile with aws_access_key_id and aws_secret_access_key; fix it, or delete it to \
         have new credentials generated",
        path.display()
    )]
    Malformed {
        /// The file.
        path: PathBuf,
    },
}

/// Reads the `[default]` profile of the credentials file at `path`, or, if there is no file,
/// generates a new key pair and writes it there (mode 0600). Returns the credential and
/// whether it was just created.
pub fn load_or_create(path: &Path) -> Result<(Credential, bool), CredentialsFileError> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let credential = parse(&text).ok_or_else(|| CredentialsFileError::Malformed {
                path: path.to_owned(),
            })?;
            Ok((credential, false))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            let credential = generate();
            write(path, &credential)?;
            Ok((credential, true))
        }
        Err(source) => Err(CredentialsFileError::Io {
            operation: "read",
            path: path.to_owned(),
            source,
        }),
    }
}

/// A new random key pair: an AWS-shaped access key id (`AKIA` + 16 characters) and a
/// 40-character secret.
pub fn generate() -> Credential {
    Credential {
        access_key_id: format!("AKIA{}", ferrule_pki::random_hex(8).to_ascii_uppercase()),
        secret_access_key: ferrule_pki::random_hex(20),
    }
}

/// The `[default]` profile's keys, as the AWS SDKs read the INI format.
fn parse(text: &str) -> Option<Credential> {
    let mut in_default = false;
    let (mut key, mut secret) = (None, None);
    for line in text.lines().map(str::trim) {
        if line.is_empty() || line.starts_with('#') || line.starts_with(';') {
            continue;
        }
        if let Some(section) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            in_default = section.trim() == "default";
            continue;
        }
        if !in_default {
            continue;
        }
        if let Some((k, v)) = line.split_once('=') {
            match k.trim() {
                "aws_access_key_id" => key = Some(v.trim().to_owned()),
                "aws_secret_access_key" => secret = Some(v.trim().to_owned()),
                _ => {}
            }
        }
    }
    match (key, secret) {
        (Some(access_key_id), Some(secret_access_key))
            if !access_key_id.is_empty() && !secret_access_key.is_empty() =>
        {
            Some(Credential {
                access_key_id,
                secret_access_key,
            })
        }
        _ => None,
    }
}

/// Writes the file through a temporary file and a rename, created with mode 0600.
fn write(path: &Path, credential: &Credential) -> Result<(), CredentialsFileError> {
    let body = format!(
        "# Ferrule admin credentials, generated once; keep this file private.\n[default]\naws_access_key_id = \
         {}\naws_secret_access_key = {}\n",
        credential.access_key_id, credential.secret_access_key
    );
    let tmp = path.with_extension("tmp");
    let io = |operation, p: &Path| {
        let p = p.to_owned();
        move |source| CredentialsFileError::Io {
            operation,
            path: p,
            source,
        }
    };
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(&tmp).map_err(io("create", &tmp))?;
    file.write_all(body.as_bytes()).map_err(io("write", &tmp))?;
    file.sync_all().map_err(io("write", &tmp))?;
    drop(file);
    std::fs::rename(&tmp, path).map_err(io("write", path))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn generated_once_then_reused_with_mode_0600() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        let (first, created) = load_or_create(&path).unwrap();
        assert!(created);
        assert_eq!(first.access_key_id.len(), 20);
        assert!(first.access_key_id.starts_with("AKIA"));
        assert_eq!(first.secret_access_key.len(), 40);
        let (again, created) = load_or_create(&path).unwrap();
        assert!(!created);
        assert_eq!(again, first);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            assert_eq!(
                std::fs::metadata(&path).unwrap().permissions().mode() & 0o777,
                0o600
            );
        }
    }

    #[test]
    fn the_default_profile_is_read_and_others_ignored() {
        let text = "[other]\naws_access_key_id = X\n\n[default]\n# c\naws_access_key_id=AK\naws_secret_access_key = S \n";
        assert_eq!(
            parse(text),
            Some(Credential {
                access_key_id: "AK".into(),
                secret_access_key: "S".into()
            })
        );
        assert_eq!(
            parse("[other]\naws_access_key_id = X\naws_secret_access_key = Y\n"),
            None
        );
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("credentials");
        std::fs::write(&path, "[default]\n").unwrap();
        assert!(matches!(
            load_or_create(&path),
            Err(CredentialsFileError::Malformed { .. })
        ));
    }
}

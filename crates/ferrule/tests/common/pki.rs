//! Certificates made with the `openssl` command line (3.0), the way operators and device makers
//! make them: a self-signed CA (`openssl req -x509 -new`), device certificates by the usual
//! recipe (a CSR, then `openssl x509 -req -CA ca.pem -CAkey ca.key -CAcreateserial` with no
//! extension file: X.509 v1), the CA-registration verification certificate, and the odd ones the
//! refusal tests need: expired and not-yet-valid (`openssl ca -startdate/-enddate`, since this
//! OpenSSL's `x509 -req` cannot set dates), signed by a twin CA with the same subject and another
//! key, and signed with SHA-1.
//!
//! Certificate ids are the lowercase hex SHA-256 of the DER, computed here with the TLS
//! provider's hash, independently of the code under test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};

use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject;

use super::{CLIENT_TIMEOUT, run};

/// A key algorithm for a CA or a device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum KeyAlg {
    Rsa2048,
    EcP256,
}

/// A directory of certificates and keys made with `openssl`.
pub(crate) struct Pki {
    dir: PathBuf,
    /// Holds the directory when this `Pki` made its own.
    _tmp: Option<tempfile::TempDir>,
    /// Serials for `-set_serial` (used where `-CAcreateserial` would race between threads).
    serial: AtomicU64,
}

/// A CA: a self-signed v3 certificate with basicConstraints CA:TRUE, and its key.
#[derive(Debug, Clone)]
pub(crate) struct Ca {
    pub(crate) name: String,
    /// The `-subj` it was made with, e.g. `/O=Ferrule Tests/CN=Some CA`.
    pub(crate) subj: String,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

/// A certificate with its private key: a device certificate, usually.
#[derive(Debug, Clone)]
pub(crate) struct Cert {
    pub(crate) name: String,
    pub(crate) cert: PathBuf,
    pub(crate) key: PathBuf,
}

/// What `openssl x509` says about a certificate, in the forms Ferrule's events use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CertInfo {
    pub(crate) id: String,
    /// RFC 4514 (`-nameopt RFC2253`: most specific RDN first, no spaces).
    pub(crate) subject: String,
    pub(crate) issuer: String,
    /// `YYYY-MM-DDTHH:MM:SSZ`.
    pub(crate) not_before: String,
    pub(crate) not_after: String,
}

impl Cert {
    /// The certificate's PEM text.
    pub(crate) fn pem(&self) -> String {
        std::fs::read_to_string(&self.cert)
            .unwrap_or_else(|e| panic!("reading {}: {e}", self.cert.display()))
    }

    /// Its DER (the first certificate in the file).
    pub(crate) fn der(&self) -> Vec<u8> {
        der_of(&self.cert)
    }

    /// The id AWS gives it: lowercase hex SHA-256 of the DER.
    pub(crate) fn id(&self) -> String {
        certificate_id(&self.cert)
    }

    /// Subject, issuer and validity, from `openssl x509`.
    pub(crate) fn info(&self) -> CertInfo {
        cert_info(&self.cert)
    }

    /// `file://PATH` of the certificate, as the aws CLI reads file arguments.
    pub(crate) fn file_arg(&self) -> String {
        format!("file://{}", self.cert.display())
    }
}

impl Ca {
    pub(crate) fn id(&self) -> String {
        certificate_id(&self.cert)
    }

    pub(crate) fn info(&self) -> CertInfo {
        cert_info(&self.cert)
    }

    /// The CA as a [`Cert`] (its own certificate and key), e.g. to present it as a device
    /// certificate.
    pub(crate) fn as_cert(&self) -> Cert {
        Cert {
            name: self.name.clone(),
            cert: self.cert.clone(),
            key: self.key.clone(),
        }
    }

    pub(crate) fn file_arg(&self) -> String {
        format!("file://{}", self.cert.display())
    }
}

/// The first certificate in a PEM file, as DER.
pub(crate) fn der_of(path: &Path) -> Vec<u8> {
    CertificateDer::from_pem_file(path)
        .unwrap_or_else(|e| panic!("no PEM certificate in {}: {e:?}", path.display()))
        .as_ref()
        .to_vec()
}

/// Lowercase hex SHA-256 of `data`, with the TLS provider's SHA-256.
pub(crate) fn sha256_hex(data: &[u8]) -> String {
    let suite = rustls::crypto::aws_lc_rs::cipher_suite::TLS13_AES_128_GCM_SHA256
        .tls13()
        .expect("a TLS 1.3 suite");
    let digest = suite.common.hash_provider.hash(data);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}

/// The certificate id of the first certificate in a PEM file.
pub(crate) fn certificate_id(path: &Path) -> String {
    sha256_hex(&der_of(path))
}

/// `openssl x509 -noout -subject -issuer -startdate -enddate` in RFC 4514 / ISO 8601 forms.
pub(crate) fn cert_info(path: &Path) -> CertInfo {
    let out = openssl_in(
        path.parent().expect("a file in a directory"),
        &[
            "x509",
            "-in",
            &path.display().to_string(),
            "-noout",
            "-subject",
            "-issuer",
            "-startdate",
            "-enddate",
            "-nameopt",
            "RFC2253",
            "-dateopt",
            "iso_8601",
        ],
    );
    let field = |key: &str| {
        out.lines()
            .find_map(|l| l.strip_prefix(key))
            .unwrap_or_else(|| panic!("no {key} in openssl output:\n{out}"))
            .trim()
            .to_owned()
    };
    // "2020-01-01 00:00:00Z" -> "2020-01-01T00:00:00Z"
    let iso = |s: String| s.replacen(' ', "T", 1);
    CertInfo {
        id: certificate_id(path),
        subject: field("subject="),
        issuer: field("issuer="),
        not_before: iso(field("notBefore=")),
        not_after: iso(field("notAfter=")),
    }
}

/// Runs `openssl ARGS` in `dir`; panics with its stderr if it fails. Returns stdout.
pub(crate) fn openssl_in(dir: &Path, args: &[&str]) -> String {
    let mut cmd = Command::new("openssl");
    cmd.args(args).current_dir(dir);
    let out = run(&mut cmd, CLIENT_TIMEOUT * 3);
    assert!(
        out.status.success(),
        "openssl {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn newkey_args(alg: KeyAlg) -> &'static [&'static str] {
    match alg {
        KeyAlg::Rsa2048 => &["-newkey", "rsa:2048"],
        KeyAlg::EcP256 => &["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"],
    }
}

impl Pki {
    /// A `Pki` in its own temporary directory.
    pub(crate) fn new() -> Pki {
        let tmp = tempfile::Builder::new()
            .prefix("ferrule-pki-")
            .tempdir()
            .expect("creating a temp dir");
        Pki {
            dir: tmp.path().to_owned(),
            _tmp: Some(tmp),
            serial: AtomicU64::new(1000),
        }
    }

    /// A `Pki` in `dir` (created), which the caller keeps.
    pub(crate) fn in_dir(dir: &Path) -> Pki {
        std::fs::create_dir_all(dir).expect("creating the pki dir");
        Pki {
            dir: dir.to_owned(),
            _tmp: None,
            serial: AtomicU64::new(1000),
        }
    }

    pub(crate) fn dir(&self) -> &Path {
        &self.dir
    }

    pub(crate) fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    fn openssl(&self, args: &[&str]) -> String {
        openssl_in(&self.dir, args)
    }

    /// A self-signed CA with subject `subj` (e.g. `/CN=My CA`), valid ten years:
    /// `openssl req -x509 -new` (OpenSSL's default `v3_ca` extensions: CA:TRUE).
    pub(crate) fn ca(&self, name: &str, subj: &str, alg: KeyAlg) -> Ca {
        let key = format!("{name}.key");
        let cert = format!("{name}.pem");
        let mut args = vec!["req", "-x509", "-new", "-nodes"];
        args.extend(newkey_args(alg));
        args.extend([
            "-keyout", &key, "-sha256", "-days", "3650", "-subj", subj, "-out", &cert,
        ]);
        self.openssl(&args);
        Ca {
            name: name.to_owned(),
            subj: subj.to_owned(),
            cert: self.path(&cert),
            key: self.path(&key),
        }
    }

    /// A key and CSR with subject `/CN=cn`: `NAME.key`, `NAME.csr`.
    fn key_and_csr(&self, name: &str, cn: &str, alg: KeyAlg) {
        let mut args = vec!["req", "-new", "-nodes"];
        args.extend(newkey_args(alg));
        let key = format!("{name}.key");
        let csr = format!("{name}.csr");
        let subj = format!("/CN={cn}");
        args.extend(["-keyout", &key, "-subj", &subj, "-out", &csr]);
        self.openssl(&args);
    }

    fn cert_named(&self, name: &str) -> Cert {
        Cert {
            name: name.to_owned(),
            cert: self.path(&format!("{name}.pem")),
            key: self.path(&format!("{name}.key")),
        }
    }

    /// A device certificate with subject `CN=name`, by the usual recipe:
    /// `openssl x509 -req -in NAME.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 365
    /// -sha256` (X.509 v1). Not for use from several threads at once (the serial file);
    /// see [`Pki::device_with_serial`].
    pub(crate) fn device(&self, name: &str, ca: &Ca, alg: KeyAlg) -> Cert {
        self.key_and_csr(name, name, alg);
        let csr = format!("{name}.csr");
        let out = format!("{name}.pem");
        let (ca_cert, ca_key) = (ca.cert.display().to_string(), ca.key.display().to_string());
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_cert,
            "-CAkey",
            &ca_key,
            "-CAcreateserial",
            "-days",
            "365",
            "-sha256",
            "-out",
            &out,
        ]);
        self.cert_named(name)
    }

    /// Like [`Pki::device`], with an explicit serial instead of the CA's serial file, so
    /// threads can make devices under one CA at once.
    pub(crate) fn device_with_serial(&self, name: &str, ca: &Ca, alg: KeyAlg) -> Cert {
        self.signed(name, name, ca, &ca.key, alg, "-sha256")
    }

    /// `NAME` with subject `CN=cn`, signed with `signing_key` (naming `ca` as issuer) and digest
    /// flag `digest`, serial from the counter.
    fn signed(
        &self,
        name: &str,
        cn: &str,
        ca: &Ca,
        signing_key: &Path,
        alg: KeyAlg,
        digest: &str,
    ) -> Cert {
        self.key_and_csr(name, cn, alg);
        let serial = self.serial.fetch_add(1, Ordering::Relaxed).to_string();
        let csr = format!("{name}.csr");
        let out = format!("{name}.pem");
        let (ca_cert, key) = (
            ca.cert.display().to_string(),
            signing_key.display().to_string(),
        );
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_cert,
            "-CAkey",
            &key,
            "-set_serial",
            &serial,
            "-days",
            "365",
            digest,
            "-out",
            &out,
        ]);
        self.cert_named(name)
    }

    /// `n` devices `PREFIX-0 .. PREFIX-(n-1)` under `ca`, made by `threads` threads at once.
    pub(crate) fn devices_parallel(
        &self,
        prefix: &str,
        ca: &Ca,
        alg: KeyAlg,
        n: usize,
        threads: usize,
    ) -> Vec<Cert> {
        let next = AtomicU64::new(0);
        let mut made: Vec<(usize, Cert)> = std::thread::scope(|s| {
            let workers: Vec<_> = (0..threads.max(1))
                .map(|_| {
                    s.spawn(|| {
                        let mut mine = Vec::new();
                        loop {
                            let i = usize::try_from(next.fetch_add(1, Ordering::Relaxed))
                                .expect("a small count");
                            if i >= n {
                                return mine;
                            }
                            let name = format!("{prefix}-{i}");
                            mine.push((i, self.device_with_serial(&name, ca, alg)));
                        }
                    })
                })
                .collect();
            workers
                .into_iter()
                .flat_map(|w| w.join().expect("a certificate-making thread"))
                .collect()
        });
        made.sort_by_key(|(i, _)| *i);
        made.into_iter().map(|(_, c)| c).collect()
    }

    /// A file with the device certificate followed by its CA certificate (`cat device.pem
    /// ca.pem`), for clients that send the chain.
    pub(crate) fn chain_file(&self, device: &Cert, ca: &Ca) -> Cert {
        let name = format!("{}-chain", device.name);
        let mut text = device.pem();
        if !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(&std::fs::read_to_string(&ca.cert).expect("reading the CA"));
        let path = self.path(&format!("{name}.pem"));
        std::fs::write(&path, text).expect("writing the chain file");
        Cert {
            name,
            cert: path,
            key: device.key.clone(),
        }
    }

    /// The private-key verification certificate for CA registration: subject CN = `code`,
    /// signed by the CA's key (`openssl x509 -req`, as in the AWS documentation).
    pub(crate) fn verification_cert(&self, ca: &Ca, code: &str) -> Cert {
        let name = format!("{}-verification", ca.name);
        self.key_and_csr(&name, code, KeyAlg::EcP256);
        let (csr, out) = (format!("{name}.csr"), format!("{name}.pem"));
        let (ca_cert, ca_key) = (ca.cert.display().to_string(), ca.key.display().to_string());
        let serial = self.serial.fetch_add(1, Ordering::Relaxed).to_string();
        self.openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &ca_cert,
            "-CAkey",
            &ca_key,
            "-set_serial",
            &serial,
            "-days",
            "30",
            "-sha256",
            "-out",
            &out,
        ]);
        self.cert_named(&name)
    }

    /// A device certificate under `ca` with an explicit validity, `start`/`end` as
    /// `YYYYMMDDHHMMSSZ`, made with `openssl ca` (a minimal config, no extensions: X.509 v1).
    pub(crate) fn device_with_dates(&self, name: &str, ca: &Ca, start: &str, end: &str) -> Cert {
        self.key_and_csr(name, name, KeyAlg::EcP256);
        let db = self.path(&format!("{name}-ca-db"));
        std::fs::create_dir_all(&db).expect("creating the openssl ca database dir");
        std::fs::write(db.join("index.txt"), "").expect("writing index.txt");
        let serial = format!("{:04X}\n", self.serial.fetch_add(1, Ordering::Relaxed));
        std::fs::write(db.join("serial"), serial).expect("writing serial");
        let config = format!(
            "[ ca ]\ndefault_ca = tests\n[ tests ]\ndatabase = {db}/index.txt\nnew_certs_dir = {db}\n\
             serial = {db}/serial\ndefault_md = sha256\npolicy = any\nunique_subject = no\n\
             copy_extensions = none\n[ any ]\ncommonName = supplied\n",
            db = db.display()
        );
        let config_path = db.join("ca.cnf");
        std::fs::write(&config_path, config).expect("writing the openssl ca config");
        let (csr, out) = (format!("{name}.csr"), format!("{name}.pem"));
        let (ca_cert, ca_key) = (ca.cert.display().to_string(), ca.key.display().to_string());
        self.openssl(&[
            "ca",
            "-batch",
            "-notext",
            "-config",
            &config_path.display().to_string(),
            "-cert",
            &ca_cert,
            "-keyfile",
            &ca_key,
            "-in",
            &csr,
            "-out",
            &out,
            "-startdate",
            start,
            "-enddate",
            end,
        ]);
        self.cert_named(name)
    }

    /// A device certificate whose issuer is `ca`'s subject but which is signed by another key:
    /// a twin CA with the same subject and a fresh key signs it.
    pub(crate) fn forged_device(&self, name: &str, ca: &Ca) -> Cert {
        let twin = self.ca(&format!("{name}-twin-ca"), &ca.subj, KeyAlg::EcP256);
        self.signed(name, name, &twin, &twin.key, KeyAlg::EcP256, "-sha256")
    }

    /// A device certificate under `ca` signed with SHA-1 (`ecdsa-with-SHA1` or
    /// `sha1WithRSAEncryption`), an algorithm Ferrule does not accept.
    pub(crate) fn sha1_device(&self, name: &str, ca: &Ca) -> Cert {
        self.signed(name, name, ca, &ca.key, KeyAlg::EcP256, "-sha1")
    }

    /// A self-signed end-entity certificate (basicConstraints CA:FALSE), as made for
    /// RegisterCertificateWithoutCA.
    pub(crate) fn self_signed_leaf(&self, name: &str) -> Cert {
        let (key, out, subj) = (
            format!("{name}.key"),
            format!("{name}.pem"),
            format!("/CN={name}"),
        );
        let mut args = vec!["req", "-x509", "-nodes"];
        args.extend(newkey_args(KeyAlg::EcP256));
        args.extend([
            "-keyout",
            &key,
            "-subj",
            &subj,
            "-days",
            "30",
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-out",
            &out,
        ]);
        self.openssl(&args);
        self.cert_named(name)
    }

    /// A file of bytes that are no certificate, with a usable key next to it, for a client
    /// that sends garbage as its certificate.
    pub(crate) fn garbage_cert(&self, name: &str) -> Cert {
        self.key_and_csr(name, name, KeyAlg::EcP256);
        let path = self.path(&format!("{name}.bin"));
        std::fs::write(&path, b"\x30\x03\x02\x01\x00 this is not a certificate")
            .expect("writing the garbage");
        Cert {
            name: name.to_owned(),
            cert: path,
            key: self.path(&format!("{name}.key")),
        }
    }
}

//! Certificates, keys and CSRs made by the openssl CLI in a temporary directory.

use std::path::PathBuf;
use std::process::Command;

/// A temporary directory in which openssl commands run.
pub struct Dir {
    tmp: tempfile::TempDir,
}

impl Dir {
    pub fn new() -> Self {
        Dir {
            tmp: tempfile::tempdir().expect("tempdir"),
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.tmp.path().join(name)
    }

    /// Runs `openssl ARGS` in the directory; panics with its output if it fails.
    pub fn openssl(&self, args: &[&str]) -> String {
        let (ok, text) = self.try_openssl(args);
        assert!(ok, "openssl {args:?} failed:\n{text}");
        text
    }

    /// Runs `openssl ARGS` in the directory; returns success and stdout + stderr.
    pub fn try_openssl(&self, args: &[&str]) -> (bool, String) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(self.tmp.path())
            .output()
            .expect("openssl is installed");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        (out.status.success(), text)
    }

    /// Runs a shell command line in the directory and returns its trimmed stdout.
    pub fn sh(&self, line: &str) -> String {
        let out = Command::new("sh")
            .args(["-c", line])
            .current_dir(self.tmp.path())
            .output()
            .expect("sh");
        assert!(
            out.status.success(),
            "{line} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    }

    pub fn read(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).expect("read")
    }

    pub fn read_bytes(&self, name: &str) -> Vec<u8> {
        std::fs::read(self.path(name)).expect("read")
    }

    pub fn write(&self, name: &str, contents: impl AsRef<[u8]>) {
        std::fs::write(self.path(name), contents).expect("write");
    }

    /// `openssl genrsa -out NAME BITS`.
    pub fn rsa_key(&self, name: &str, bits: u32) {
        self.openssl(&["genrsa", "-out", name, &bits.to_string()]);
    }

    /// `openssl ecparam -genkey -name CURVE -noout -out NAME`.
    pub fn ec_key(&self, name: &str, curve: &str) {
        self.openssl(&["ecparam", "-genkey", "-name", curve, "-noout", "-out", name]);
    }

    /// A self-signed v3 CA, as in AWS's recipe: `openssl req -x509 -new -nodes -key KEY
    /// -DIGEST -days 1024 -out OUT -subj SUBJ`.
    pub fn self_signed(&self, key: &str, out: &str, subj: &str, digest: &str) {
        self.openssl(&[
            "req",
            "-x509",
            "-new",
            "-nodes",
            "-key",
            key,
            &format!("-{digest}"),
            "-days",
            "1024",
            "-out",
            out,
            "-subj",
            subj,
        ]);
    }

    /// `openssl req -new -key KEY -out OUT -subj SUBJ`.
    pub fn csr(&self, key: &str, out: &str, subj: &str) {
        self.openssl(&["req", "-new", "-key", key, "-out", out, "-subj", subj]);
    }

    /// A v1 certificate for CSR signed by CA, as in AWS's recipe: `openssl x509 -req -in CSR
    /// -CA CA -CAkey CAKEY -CAcreateserial -out OUT -days 500 -DIGEST`, plus EXTRA.
    pub fn sign(&self, csr: &str, ca: &str, ca_key: &str, out: &str, digest: &str, extra: &[&str]) {
        let digest = format!("-{digest}");
        let mut args = vec![
            "x509",
            "-req",
            "-in",
            csr,
            "-CA",
            ca,
            "-CAkey",
            ca_key,
            "-CAcreateserial",
            "-out",
            out,
            "-days",
            "500",
            &digest,
        ];
        args.extend_from_slice(extra);
        self.openssl(&args);
    }

    /// Key NAME.key, CSR NAME.csr with SUBJ, certificate NAME.pem signed by CA (SHA-256, v1).
    pub fn device_rsa(&self, name: &str, subj: &str, ca: &str) {
        self.rsa_key(&format!("{name}.key"), 2048);
        self.device_from_key(name, subj, ca);
    }

    /// Certificate NAME.pem for the existing key NAME.key, signed by CA.pem with CA.key.
    pub fn device_from_key(&self, name: &str, subj: &str, ca: &str) {
        self.csr(&format!("{name}.key"), &format!("{name}.csr"), subj);
        self.sign(
            &format!("{name}.csr"),
            &format!("{ca}.pem"),
            &format!("{ca}.key"),
            &format!("{name}.pem"),
            "sha256",
            &[],
        );
    }

    /// `openssl x509 -noout -fingerprint -sha256` without the colons, lowercased.
    pub fn fingerprint(&self, cert: &str) -> String {
        let out = self.openssl(&["x509", "-in", cert, "-noout", "-fingerprint", "-sha256"]);
        let (_, hex) = out.trim().split_once('=').expect("Fingerprint=..");
        hex.replace(':', "").to_lowercase()
    }

    /// One field of `openssl x509 -noout -FIELD [-nameopt RFC2253]`, after the `=`.
    pub fn x509_field(&self, cert: &str, field: &str) -> String {
        let out = self.openssl(&[
            "x509",
            "-in",
            cert,
            "-noout",
            &format!("-{field}"),
            "-nameopt",
            "RFC2253",
        ]);
        let (_, value) = out.trim().split_once('=').expect("FIELD=..");
        value.to_owned()
    }

    /// A validity date of CERT (`startdate` or `enddate`) as Unix seconds, via GNU date.
    pub fn date(&self, cert: &str, field: &str) -> i64 {
        let text = self.x509_field(cert, field);
        self.sh(&format!("date -u -d '{text}' +%s"))
            .parse()
            .expect("seconds")
    }
}

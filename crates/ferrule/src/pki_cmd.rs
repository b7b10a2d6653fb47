//! `ferrule ca create` and `ferrule device issue`: a CA for device certificates and device
//! certificates signed by it, as files an operator hands to devices, to `ferrule ca register`
//! and to the aws CLI. They replace the page of `openssl` commands a JITR setup otherwise takes.
//!
//! Files (PEM; keys PKCS#8, mode 0600, never overwritten):
//! - CA dir: `ca.key`, `ca.pem` (basicConstraints CA:TRUE, pathlen 0, keyCertSign), and, once
//!   registered, `ca-id`.
//! - Device dir: `NAME.key`, `NAME.pem` (CN=NAME, clientAuth) and `NAME-chain.pem` (the device
//!   certificate followed by the CA certificate, what a JITR device presents).
//!
//! Issuing is rcgen's; what it produced is checked with `ferrule-pki` (the signature verifies
//! with the CA's key, the issuer name is the CA's subject byte for byte), so a certificate that
//! would not chain to the registered CA is an error here rather than a refused handshake later.

use std::fs::{self, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use anyhow::{Context, bail};
use clap::{Args, Subcommand, ValueEnum};
use ferrule_pki::ParsedCertificate;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, RsaKeySize, SerialNumber,
};
use time::{Duration, OffsetDateTime};

use crate::control;

/// File names inside a CA dir.
pub(crate) const CA_KEY_FILE: &str = "ca.key";
pub(crate) const CA_CERT_FILE: &str = "ca.pem";
pub(crate) const CA_ID_FILE: &str = "ca-id";

/// Backdating absorbs clock skew between the machine that issues and the one that verifies.
const BACKDATE: Duration = Duration::hours(1);
/// The longest `--days` accepted: a hundred years.
const MAX_DAYS: u32 = 36_500;
/// The most certificates one `device issue --count` makes.
const MAX_COUNT: u32 = 1_000_000;

/// `ferrule ca ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum CaCommand {
    /// Create a CA (key and self-signed certificate) for signing device certificates.
    Create(CaCreateArgs),
    /// Register a CA with a running Ferrule (or AWS IoT API) with proof of possession.
    Register(control::RegisterArgs),
}

/// `ferrule device ...`.
#[derive(Debug, Subcommand)]
pub(crate) enum DeviceCommand {
    /// Issue device certificates signed by a CA made with `ferrule ca create`.
    Issue(DeviceIssueArgs),
}

/// The key algorithm of a new key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum KeyKind {
    /// ECDSA on P-256 with SHA-256: small, fast, supported by every TLS client.
    EcP256,
    /// RSA 2048 with SHA-256 (PKCS#1 v1.5): for devices without ECDSA.
    Rsa2048,
}

impl KeyKind {
    fn label(self) -> &'static str {
        match self {
            KeyKind::EcP256 => "ec-p256",
            KeyKind::Rsa2048 => "rsa2048",
        }
    }

    fn generate(self) -> anyhow::Result<KeyPair> {
        let key = match self {
            KeyKind::EcP256 => KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
            KeyKind::Rsa2048 => {
                KeyPair::generate_rsa_for(&rcgen::PKCS_RSA_SHA256, RsaKeySize::_2048)
            }
        };
        key.with_context(|| format!("cannot generate an {} key", self.label()))
    }
}

/// `ferrule ca create`.
#[derive(Debug, Args)]
pub(crate) struct CaCreateArgs {
    /// Directory to write ca.key and ca.pem into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Key algorithm of the CA.
    #[arg(long, value_enum, default_value = "ec-p256")]
    key_type: KeyKind,
    /// Days the CA certificate is valid.
    #[arg(long, value_name = "N", default_value_t = 3650)]
    days: u32,
    /// Common name (CN) of the CA certificate's subject.
    #[arg(long, value_name = "CN", default_value = "Ferrule device CA")]
    name: String,
}

/// `ferrule device issue`.
#[derive(Debug, Args)]
pub(crate) struct DeviceIssueArgs {
    /// CA directory made by `ferrule ca create` (ca.pem and ca.key).
    #[arg(long, value_name = "DIR")]
    ca: PathBuf,
    /// Device name: the certificate's CN and the files' base name.
    #[arg(long, value_name = "NAME")]
    name: String,
    /// Directory to write the device files into (created if missing).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// Days the device certificate is valid.
    #[arg(long, value_name = "N", default_value_t = 365)]
    days: u32,
    /// Key algorithm of the device key.
    #[arg(long, value_enum, default_value = "ec-p256")]
    key_type: KeyKind,
    /// Issue N devices named NAME-1 .. NAME-N instead of one named NAME.
    #[arg(long, value_name = "N")]
    count: Option<u32>,
}

/// Runs `ferrule ca SUBCOMMAND`.
pub(crate) fn run_ca(command: CaCommand) -> anyhow::Result<()> {
    match command {
        CaCommand::Create(args) => ca_create(&args),
        CaCommand::Register(args) => control::register(&args),
    }
}

/// Runs `ferrule device SUBCOMMAND`.
pub(crate) fn run_device(command: DeviceCommand) -> anyhow::Result<()> {
    match command {
        DeviceCommand::Issue(args) => device_issue(&args),
    }
}

fn ca_create(args: &CaCreateArgs) -> anyhow::Result<()> {
    let lifetime = lifetime(args.days)?;
    if args.name.trim().is_empty() {
        bail!("--name must not be empty");
    }
    let parsed = create_ca(&args.out, args.key_type, lifetime, &args.name)?;
    let key_path = args.out.join(CA_KEY_FILE);
    let cert_path = args.out.join(CA_CERT_FILE);
    println!(
        "Created CA {} ({}, valid {} days)",
        parsed.subject,
        args.key_type.label(),
        args.days
    );
    println!("  certificate:    {}", cert_path.display());
    println!(
        "  private key:    {} (mode 0600; keep it secret)",
        key_path.display()
    );
    println!("  certificate id: {}", parsed.id.as_str());
    println!(
        "Next: ferrule ca register --ca {} --endpoint http://API_ADDR --activate --auto-registration",
        args.out.display()
    );
    Ok(())
}

/// Writes a new CA (`ca.key`, `ca.pem`) with subject `CN=name` into `out` (refusing to
/// overwrite either), valid from an hour ago for `lifetime`. Returns its certificate.
pub(crate) fn create_ca(
    out: &Path,
    key_type: KeyKind,
    lifetime: Duration,
    name: &str,
) -> anyhow::Result<ParsedCertificate> {
    let key_path = out.join(CA_KEY_FILE);
    let cert_path = out.join(CA_CERT_FILE);
    refuse_existing(&[&key_path, &cert_path])?;
    create_dir(out)?;

    let key = key_type.generate()?;
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(name);
    params.serial_number = Some(random_serial());
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - BACKDATE;
    params.not_after = now + lifetime;
    let cert = params
        .self_signed(&key)
        .context("cannot self-sign the CA certificate")?;

    write_new(&key_path, key.serialize_pem().as_bytes(), true)?;
    write_new(&cert_path, cert.pem().as_bytes(), false)?;
    ferrule_pki::parse_certificate_der(cert.der()).context("the new CA certificate does not parse")
}

fn device_issue(args: &DeviceIssueArgs) -> anyhow::Result<()> {
    let lifetime = lifetime(args.days)?;
    check_device_name(&args.name)?;
    let names: Vec<String> = match args.count {
        None => vec![args.name.clone()],
        Some(0) => bail!("--count must be at least 1"),
        Some(n) if n > MAX_COUNT => bail!("--count must be at most {MAX_COUNT}"),
        Some(n) => (1..=n).map(|i| format!("{}-{i}", args.name)).collect(),
    };
    let ca = LoadedCa::load(&args.ca)?;
    // Every file is checked before any is written, so a batch never stops half-way on a
    // leftover from an earlier run.
    let all_files: Vec<PathBuf> = names
        .iter()
        .flat_map(|n| device_files(&args.out, n).into_iter())
        .collect();
    refuse_existing(&all_files.iter().collect::<Vec<_>>())?;
    create_dir(&args.out)?;

    let total = names.len();
    let started = Instant::now();
    let step = (total / 10).max(1);
    for (i, name) in names.iter().enumerate() {
        let issued = ca.issue_device(name, args.key_type, lifetime)?;
        let [key_path, cert_path, chain_path] = device_files(&args.out, name);
        let chain = format!("{}{}", issued.cert_pem, ca.cert_pem);
        write_new(&key_path, issued.key_pem.as_bytes(), true)?;
        write_new(&cert_path, issued.cert_pem.as_bytes(), false)?;
        write_new(&chain_path, chain.as_bytes(), false)?;
        if total == 1 {
            println!(
                "Issued device certificate CN={name} ({}, valid {} days) signed by {}",
                args.key_type.label(),
                args.days,
                ca.cert.subject
            );
            println!("  certificate:    {}", cert_path.display());
            println!("  private key:    {} (mode 0600)", key_path.display());
            println!(
                "  chain:          {} (device + CA: what a JITR device presents)",
                chain_path.display()
            );
            println!("  certificate id: {}", issued.id);
        } else {
            println!("{name} {}", issued.id);
            let done = i + 1;
            if done % step == 0 || done == total {
                eprintln!(
                    "issued {done}/{total} device certificates ({}%, {:.1}s)",
                    done * 100 / total,
                    started.elapsed().as_secs_f64()
                );
            }
        }
    }
    if total > 1 {
        eprintln!(
            "Wrote {total} devices to {} ({n}-1 .. {n}-{total}: .key, .pem and -chain.pem each)",
            args.out.display(),
            n = args.name
        );
    }
    Ok(())
}

/// `NAME.key`, `NAME.pem`, `NAME-chain.pem` in `dir`.
fn device_files(dir: &Path, name: &str) -> [PathBuf; 3] {
    [
        dir.join(format!("{name}.key")),
        dir.join(format!("{name}.pem")),
        dir.join(format!("{name}-chain.pem")),
    ]
}

/// A device name is a CN and a file name: no path separators, not empty, not hidden.
fn check_device_name(name: &str) -> anyhow::Result<()> {
    if name.is_empty()
        || name.starts_with('.')
        || name.contains(['/', '\\', '\0'])
        || name.chars().any(char::is_control)
    {
        bail!(
            "invalid device name {name:?}: it becomes the certificate's CN and a file name, so \
             it must be non-empty, not start with '.', and contain no '/', '\\' or control \
             characters"
        );
    }
    Ok(())
}

fn lifetime(days: u32) -> anyhow::Result<Duration> {
    if days == 0 || days > MAX_DAYS {
        bail!("--days must be between 1 and {MAX_DAYS}, not {days}");
    }
    Ok(Duration::days(i64::from(days)))
}

/// A CA loaded from a CA dir, ready to sign.
pub(crate) struct LoadedCa {
    /// `DIR/ca.pem`, as stored.
    pub(crate) cert_pem: String,
    /// The CA certificate, parsed.
    pub(crate) cert: ParsedCertificate,
    issuer: Issuer<'static, KeyPair>,
}

/// A freshly issued certificate, its key and its id.
pub(crate) struct IssuedCert {
    pub(crate) cert_pem: String,
    pub(crate) key_pem: String,
    pub(crate) id: String,
}

impl LoadedCa {
    /// Reads `DIR/ca.pem` and `DIR/ca.key`, and checks that the certificate is a CA and that
    /// the key is its key.
    pub(crate) fn load(dir: &Path) -> anyhow::Result<LoadedCa> {
        let cert_path = dir.join(CA_CERT_FILE);
        let key_path = dir.join(CA_KEY_FILE);
        let cert_pem = read_text(&cert_path, "the CA certificate")?;
        let key_pem = read_text(&key_path, "the CA private key")?;
        let cert = ferrule_pki::parse_certificate_pem(&cert_pem)
            .with_context(|| format!("{} is not a usable CA certificate", cert_path.display()))?;
        if !cert.is_ca {
            bail!(
                "{} is not a CA certificate (no basicConstraints CA:TRUE); make one with \
                 `ferrule ca create`",
                cert_path.display()
            );
        }
        let key = KeyPair::from_pem(&key_pem).map_err(|e| {
            anyhow::anyhow!(
                "{} is not a usable private key ({e}); expected an unencrypted PKCS#8, SEC1 or \
                 PKCS#1 PEM key",
                key_path.display()
            )
        })?;
        if key.subject_public_key_info() != cert.spki_der {
            bail!(
                "the private key in {} does not belong to the certificate in {}",
                key_path.display(),
                cert_path.display()
            );
        }
        let issuer = Issuer::from_ca_cert_der(&cert.der.clone().into(), key)
            .map_err(|e| anyhow::anyhow!("cannot use {} as a CA: {e}", cert_path.display()))?;
        Ok(LoadedCa {
            cert_pem: ensure_newline(cert_pem),
            cert,
            issuer,
        })
    }

    /// A device certificate for `CN=name` with a fresh key: clientAuth, valid from an hour
    /// ago for `lifetime`.
    pub(crate) fn issue_device(
        &self,
        name: &str,
        kind: KeyKind,
        lifetime: Duration,
    ) -> anyhow::Result<IssuedCert> {
        let mut params = leaf_params(name, lifetime);
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        self.sign(
            params,
            kind,
            &format!("the device certificate for {name:?}"),
        )
    }

    /// The verification certificate of RegisterCACertificate: CN = the registration code,
    /// a fresh EC key, signed by the CA (the proof that we hold the CA's key).
    pub(crate) fn verification_certificate(&self, code: &str) -> anyhow::Result<IssuedCert> {
        let params = leaf_params(code, Duration::days(1));
        self.sign(params, KeyKind::EcP256, "the verification certificate")
    }

    fn sign(
        &self,
        params: CertificateParams,
        kind: KeyKind,
        what: &str,
    ) -> anyhow::Result<IssuedCert> {
        let key = kind.generate()?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .with_context(|| format!("cannot sign {what}"))?;
        let parsed = ferrule_pki::parse_certificate_der(cert.der())
            .with_context(|| format!("{what} does not parse"))?;
        // A certificate whose issuer name differs from the CA's subject in any byte would be
        // refused at the handshake; better to say so here.
        if parsed.issuer_der != self.cert.subject_der {
            bail!(
                "{what} would not chain to the CA: its issuer name cannot be copied exactly \
                 from the CA's subject {}",
                self.cert.subject
            );
        }
        ferrule_pki::verify_signed_by(&parsed, &self.cert)
            .with_context(|| format!("{what} does not verify with the CA's key"))?;
        Ok(IssuedCert {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            id: parsed.id.into_string(),
        })
    }
}

fn leaf_params(cn: &str, lifetime: Duration) -> CertificateParams {
    let now = OffsetDateTime::now_utc();
    let mut params = CertificateParams::default();
    params.distinguished_name = common_name(cn);
    params.serial_number = Some(random_serial());
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - BACKDATE;
    params.not_after = now + lifetime;
    params
}

fn common_name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// 16 random bytes, positive and without a leading zero byte (so always 16 bytes encoded).
fn random_serial() -> SerialNumber {
    let hex = ferrule_pki::random_hex(16);
    let mut bytes: Vec<u8> = hex
        .as_bytes()
        .chunks(2)
        .map(|pair| {
            let digit = |c: u8| char::from(c).to_digit(16).unwrap_or(0);
            let value = digit(pair[0]) * 16 + digit(pair.get(1).copied().unwrap_or(b'0'));
            u8::try_from(value).unwrap_or(0)
        })
        .collect();
    if let Some(first) = bytes.first_mut() {
        *first = (*first & 0x7f) | 0x40;
    }
    SerialNumber::from_slice(&bytes)
}

fn ensure_newline(mut text: String) -> String {
    if !text.ends_with('\n') {
        text.push('\n');
    }
    text
}

/// Reads a text file; the error names the file and what it should have been.
pub(crate) fn read_text(path: &Path, what: &str) -> anyhow::Result<String> {
    match fs::read(path) {
        Ok(bytes) => String::from_utf8(bytes)
            .map_err(|_| anyhow::anyhow!("{} ({what}) is not a PEM text file", path.display())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => bail!(
            "{} ({what}) does not exist; make a CA with `ferrule ca create --out DIR`",
            path.display()
        ),
        Err(e) => bail!("cannot read {} ({what}): {e}", path.display()),
    }
}

/// Fails naming the first of `paths` that exists.
fn refuse_existing(paths: &[&PathBuf]) -> anyhow::Result<()> {
    for path in paths {
        match path.try_exists() {
            Ok(false) => {}
            Ok(true) => bail!(
                "{} already exists; refusing to overwrite it (move it away or choose another \
                 --out directory)",
                path.display()
            ),
            Err(e) => bail!("cannot check for {}: {e}", path.display()),
        }
    }
    Ok(())
}

fn create_dir(dir: &Path) -> anyhow::Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("cannot create directory {}", dir.display()))
}

/// Creates `path` (never overwriting) and writes `contents`; secrets get mode 0600 from the
/// start.
fn write_new(path: &Path, contents: &[u8], secret: bool) -> anyhow::Result<()> {
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    #[cfg(not(unix))]
    let _ = secret;
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::anyhow!(
                "{} already exists; refusing to overwrite it",
                path.display()
            )
        } else {
            anyhow::anyhow!("cannot create {}: {e}", path.display())
        }
    })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("cannot write {}", path.display()))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    #[test]
    fn serials_are_sixteen_positive_bytes() {
        for _ in 0..50 {
            let bytes = random_serial().to_bytes();
            assert_eq!(bytes.len(), 16);
            assert_eq!(bytes[0] & 0xc0, 0x40);
        }
    }

    #[test]
    fn device_names_that_are_not_file_names_are_refused() {
        for bad in ["", ".hidden", "a/b", "a\\b", "a\nb"] {
            assert!(check_device_name(bad).is_err(), "{bad:?}");
        }
        check_device_name("sensor-01_A").unwrap();
    }

    #[test]
    fn a_loaded_ca_issues_devices_and_verification_certificates_that_chain() {
        let dir = tempfile::tempdir().unwrap();
        for kind in [KeyKind::EcP256, KeyKind::Rsa2048] {
            let out = dir.path().join(kind.label());
            ca_create(&CaCreateArgs {
                out: out.clone(),
                key_type: kind,
                days: 10,
                name: "Unit CA".into(),
            })
            .unwrap();
            let ca = LoadedCa::load(&out).unwrap();
            assert!(ca.cert.is_ca);
            let device = ca
                .issue_device("dev", KeyKind::EcP256, Duration::days(1))
                .unwrap();
            let parsed = ferrule_pki::parse_certificate_pem(&device.cert_pem).unwrap();
            assert_eq!(parsed.common_name.as_deref(), Some("dev"));
            assert!(!parsed.is_ca);
            let verification = ca.verification_certificate("abc123").unwrap();
            let parsed = ferrule_pki::parse_certificate_pem(&verification.cert_pem).unwrap();
            ferrule_pki::check_proof_of_possession(
                &ca.cert,
                &parsed,
                "abc123",
                OffsetDateTime::now_utc().unix_timestamp(),
            )
            .unwrap();
        }
    }
}

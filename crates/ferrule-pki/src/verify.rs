//! Signature checks with aws-lc-rs, independent of path building.
//!
//! x509-parser's own `verify-aws` check is not used: it accepts SHA-1, knows no P-521, and
//! reports every failure alike. Here the algorithm table is ours, and an unsupported
//! algorithm, an unsupported key and a bad signature are told apart.

use aws_lc_rs::signature::{self, RsaPssSaltLength, VerificationAlgorithm};
use x509_parser::signature_algorithm::RsaSsaPssParams;
use x509_parser::x509::{AlgorithmIdentifier, SubjectPublicKeyInfo};

use crate::cert::{self, KeyType, ParsedCertificate};
use crate::error::PkiError;

/// Checks that `issuer`'s public key made `cert`'s signature. Names are not compared and
/// validity is not checked: this answers "was this signed with that key", for proof of
/// possession and for matching a device certificate to a registered CA. It works for X.509
/// v1 certificates, which webpki refuses.
///
/// Supported: RSA PKCS#1 v1.5 with SHA-256/384/512 and RSA-PSS (SHA-256/384/512, MGF1 with
/// the same hash, any salt length) with 2048- to 8192-bit keys; ECDSA
/// with SHA-256/384/512 on P-256, P-384 and P-521. SHA-1 and anything else is refused as
/// [`PkiError::UnsupportedSignatureAlgorithm`]; an issuer key outside those sizes and curves
/// as [`PkiError::UnsupportedKey`]; a signature that does not verify (including one made
/// with a key of another type) as [`PkiError::BadSignature`].
pub fn verify_signed_by(
    cert: &ParsedCertificate,
    issuer: &ParsedCertificate,
) -> Result<(), PkiError> {
    let signed = cert::parse_x509(&cert.der, "the certificate")?;
    let signer = cert::parse_x509(&issuer.der, "the issuer certificate")?;
    verify(
        &Signed {
            message: signed.tbs_certificate.as_ref(),
            algorithm: &signed.signature_algorithm,
            signature: signed.signature_value.data.as_ref(),
            what: &format!("the certificate {}", quoted(&cert.subject)),
        },
        signer.public_key(),
        &format!("the issuer certificate {}", quoted(&issuer.subject)),
    )
}

/// A signed object, for [`verify`].
pub(crate) struct Signed<'a> {
    /// The bytes that were signed (a TBSCertificate or CertificationRequestInfo).
    pub(crate) message: &'a [u8],
    /// The signature algorithm the object names.
    pub(crate) algorithm: &'a AlgorithmIdentifier<'a>,
    /// The signature.
    pub(crate) signature: &'a [u8],
    /// Names the object in errors.
    pub(crate) what: &'a str,
}

/// Checks `signed`'s signature with `signer_key`; `signer` names the key's owner in errors.
pub(crate) fn verify(
    signed: &Signed<'_>,
    signer_key: &SubjectPublicKeyInfo<'_>,
    signer: &str,
) -> Result<(), PkiError> {
    let bad_signature = || PkiError::BadSignature {
        what: signed.what.into(),
        signer: signer.into(),
    };
    let unsupported_key = |key| PkiError::UnsupportedKey {
        what: signer.into(),
        key,
    };
    let key = cert::key_type(signer_key);
    let algorithm: Box<dyn VerificationAlgorithm> = match choose(signed)? {
        Family::Rsa(alg) => match key {
            KeyType::Rsa(bits) if (2048..=8192).contains(&bits) => alg,
            KeyType::Rsa(_) => return Err(unsupported_key(key)),
            _ => return Err(bad_signature()),
        },
        Family::Ecdsa([p256, p384, p521]) => match key {
            KeyType::EcP256 => p256,
            KeyType::EcP384 => p384,
            KeyType::EcP521 => p521,
            KeyType::Other(_)
                if signer_key.algorithm.algorithm.to_id_string() == cert::OID_EC_PUBLIC_KEY =>
            {
                return Err(unsupported_key(key));
            }
            _ => return Err(bad_signature()),
        },
    };
    algorithm
        .verify_sig(
            signer_key.subject_public_key.data.as_ref(),
            signed.message,
            signed.signature,
        )
        .map_err(|_| bad_signature())
}

/// The verification algorithms a signature algorithm allows.
enum Family {
    Rsa(Box<dyn VerificationAlgorithm>),
    /// For keys on P-256, P-384 and P-521, in that order.
    Ecdsa([Box<dyn VerificationAlgorithm>; 3]),
}

const SHA256: &str = "2.16.840.1.101.3.4.2.1";
const SHA384: &str = "2.16.840.1.101.3.4.2.2";
const SHA512: &str = "2.16.840.1.101.3.4.2.3";
const MGF1: &str = "1.2.840.113549.1.1.8";
const RSASSA_PSS: &str = "1.2.840.113549.1.1.10";

fn choose(signed: &Signed<'_>) -> Result<Family, PkiError> {
    let oid = signed.algorithm.algorithm.to_id_string();
    let unsupported = |algorithm: String| PkiError::UnsupportedSignatureAlgorithm {
        what: signed.what.into(),
        algorithm,
    };
    Ok(match oid.as_str() {
        "1.2.840.113549.1.1.11" => Family::Rsa(Box::new(signature::RSA_PKCS1_2048_8192_SHA256)),
        "1.2.840.113549.1.1.12" => Family::Rsa(Box::new(signature::RSA_PKCS1_2048_8192_SHA384)),
        "1.2.840.113549.1.1.13" => Family::Rsa(Box::new(signature::RSA_PKCS1_2048_8192_SHA512)),
        "1.2.840.10045.4.3.2" => Family::Ecdsa([
            Box::new(signature::ECDSA_P256_SHA256_ASN1),
            Box::new(signature::ECDSA_P384_SHA256_ASN1),
            Box::new(signature::ECDSA_P521_SHA256_ASN1),
        ]),
        "1.2.840.10045.4.3.3" => Family::Ecdsa([
            Box::new(signature::ECDSA_P256_SHA384_ASN1),
            Box::new(signature::ECDSA_P384_SHA384_ASN1),
            Box::new(signature::ECDSA_P521_SHA384_ASN1),
        ]),
        "1.2.840.10045.4.3.4" => Family::Ecdsa([
            Box::new(signature::ECDSA_P256_SHA512_ASN1),
            Box::new(signature::ECDSA_P384_SHA512_ASN1),
            Box::new(signature::ECDSA_P521_SHA512_ASN1),
        ]),
        RSASSA_PSS => Family::Rsa(pss(signed.algorithm).map_err(unsupported)?),
        other => return Err(unsupported(algorithm_name(other))),
    })
}

/// The aws-lc-rs PSS algorithm for these parameters: SHA-256/384/512, MGF1 over the same
/// hash, trailer field 1, and whatever salt length the parameters name (OpenSSL 3 signs with
/// the longest salt the key allows unless told otherwise). The error describes what was
/// found instead.
fn pss(algorithm: &AlgorithmIdentifier<'_>) -> Result<Box<dyn VerificationAlgorithm>, String> {
    let params = algorithm
        .parameters
        .as_ref()
        .ok_or("RSASSA-PSS without parameters")?;
    let params = RsaSsaPssParams::try_from(params)
        .map_err(|e| format!("RSASSA-PSS with malformed parameters ({e})"))?;
    let hash = params.hash_algorithm_oid().to_id_string();
    let base = match hash.as_str() {
        SHA256 => signature::RSA_PSS_2048_8192_SHA256,
        SHA384 => signature::RSA_PSS_2048_8192_SHA384,
        SHA512 => signature::RSA_PSS_2048_8192_SHA512,
        other => return Err(format!("RSASSA-PSS with hash {}", algorithm_name(other))),
    };
    let mgf = params
        .mask_gen_algorithm()
        .map_err(|e| format!("RSASSA-PSS with a malformed mask generation function ({e})"))?;
    if mgf.mgf.to_id_string() != MGF1 || mgf.hash.to_id_string() != hash {
        return Err(format!(
            "RSASSA-PSS with mask generation {} over {} (only MGF1 over the signature hash is \
             supported)",
            mgf.mgf.to_id_string(),
            algorithm_name(&mgf.hash.to_id_string())
        ));
    }
    if params.trailer_field() != 1 {
        return Err("RSASSA-PSS with a trailer field other than 1".into());
    }
    let salt = u16::try_from(params.salt_length())
        .map_err(|_| format!("RSASSA-PSS with a {}-byte salt", params.salt_length()))?;
    Ok(Box::new(
        base.with_pss_salt_length(RsaPssSaltLength::Custom(salt)),
    ))
}

/// A readable name for the algorithms people actually run into.
fn algorithm_name(oid: &str) -> String {
    match oid {
        "1.2.840.113549.1.1.4" => "md5WithRSAEncryption".into(),
        "1.2.840.113549.1.1.5" | "1.3.14.3.2.29" => "sha1WithRSAEncryption (SHA-1)".into(),
        "1.2.840.113549.1.1.14" => "sha224WithRSAEncryption".into(),
        "1.2.840.10045.4.1" => "ecdsa-with-SHA1 (SHA-1)".into(),
        "1.2.840.10045.4.3.1" => "ecdsa-with-SHA224".into(),
        "1.2.840.10040.4.3" => "dsa-with-SHA1".into(),
        "2.16.840.1.101.3.4.3.2" => "dsa-with-SHA256".into(),
        "1.3.101.112" => "Ed25519".into(),
        "1.3.101.113" => "Ed448".into(),
        "1.3.14.3.2.26" => "SHA-1".into(),
        "2.16.840.1.101.3.4.2.4" => "SHA-224".into(),
        other => format!("the algorithm with OID {other}"),
    }
}

fn quoted(subject: &str) -> String {
    if subject.is_empty() {
        "(empty subject)".into()
    } else {
        format!("\"{subject}\"")
    }
}

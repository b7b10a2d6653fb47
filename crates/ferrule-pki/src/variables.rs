//! AWS IoT's certificate policy variables (`iot:Certificate.Subject.CommonName`, ...): which
//! name attributes and alternative names count, under which names, and how they read as text.

use std::net::{Ipv4Addr, Ipv6Addr};

use x509_parser::certificate::TbsCertificate;
use x509_parser::extensions::{GeneralName, ParsedExtension};
use x509_parser::num_bigint::BigUint;
use x509_parser::oid_registry::{OID_X509_EXT_ISSUER_ALT_NAME, OID_X509_EXT_SUBJECT_ALT_NAME};
use x509_parser::x509::X509Name;

use crate::cert::ParsedCertificate;
use crate::name;

/// The name attributes AWS IoT exposes, by OID, with the name AWS gives each. Others (locality,
/// street, emailAddress, domainComponent, ...) have no policy variable.
const AWS_ATTRIBUTES: &[(&str, &str)] = &[
    ("2.5.4.3", "CommonName"),
    ("2.5.4.6", "Country"),
    ("2.5.4.10", "Organization"),
    ("2.5.4.11", "OrganizationalUnit"),
    ("2.5.4.8", "State"),
    ("2.5.4.5", "SerialNumber"),
    ("2.5.4.46", "DistinguishedNameQualifier"),
    ("2.5.4.12", "Title"),
    ("2.5.4.4", "Surname"),
    ("2.5.4.42", "GivenName"),
    ("2.5.4.43", "Initials"),
    ("2.5.4.65", "Pseudonym"),
    ("2.5.4.44", "GenerationQualifier"),
];

/// The variables' common prefix.
const PREFIX: &str = "iot:Certificate.";

/// The attributes of `name` that AWS exposes, as (AWS name, value), in the order the
/// certificate holds them (RDN by RDN, as encoded). A value that is not a string
/// [`name::attr_string`] can read is left out.
pub(crate) fn dn_attributes(name: &X509Name<'_>) -> Vec<(String, String)> {
    name.iter_attributes()
        .filter_map(|attr| {
            let oid = attr.attr_type().to_id_string();
            let (_, aws) = AWS_ATTRIBUTES.iter().find(|(o, _)| *o == oid)?;
            Some(((*aws).to_owned(), name::attr_string(attr)?))
        })
        .collect()
}

/// The subjectAltName entries AWS exposes, as (AWS name, value), in certificate order.
pub(crate) fn subject_alt_names(tbs: &TbsCertificate<'_>) -> Vec<(String, String)> {
    alt_names(general_names(tbs, true))
}

/// The issuerAltName entries AWS exposes, as (AWS name, value), in certificate order.
pub(crate) fn issuer_alt_names(tbs: &TbsCertificate<'_>) -> Vec<(String, String)> {
    alt_names(general_names(tbs, false))
}

/// The general names of the subjectAltName (`subject`) or issuerAltName extension. Absent
/// (always so in v1 certificates), present twice (which RFC 5280 forbids) or undecodable gives
/// none: the certificate is still usable, only without these variables, so that a policy that
/// needs them denies.
fn general_names<'a>(tbs: &'a TbsCertificate<'_>, subject: bool) -> &'a [GeneralName<'a>] {
    let oid = if subject {
        &OID_X509_EXT_SUBJECT_ALT_NAME
    } else {
        &OID_X509_EXT_ISSUER_ALT_NAME
    };
    let Ok(Some(ext)) = tbs.get_extension_unique(oid) else {
        return &[];
    };
    match ext.parsed_extension() {
        ParsedExtension::SubjectAlternativeName(san) if subject => &san.general_names,
        ParsedExtension::IssuerAlternativeName(ian) if !subject => &ian.general_names,
        _ => &[],
    }
}

/// The kinds AWS exposes: RFC822Name, DNSName, DirectoryName (as an RFC 4514 string, like
/// [`ParsedCertificate::subject`]), UniformResourceIdentifier and IPAddress (dotted IPv4, or
/// IPv6 in RFC 5952's compressed form). Other kinds (otherName, registeredID, ...) and entries
/// that do not decode are left out.
fn alt_names(names: &[GeneralName<'_>]) -> Vec<(String, String)> {
    names
        .iter()
        .filter_map(|general_name| {
            let (kind, value) = match general_name {
                GeneralName::RFC822Name(s) => ("RFC822Name", (*s).to_owned()),
                GeneralName::DNSName(s) => ("DNSName", (*s).to_owned()),
                GeneralName::DirectoryName(dn) => ("DirectoryName", name::rfc4514(dn)),
                GeneralName::URI(s) => ("UniformResourceIdentifier", (*s).to_owned()),
                GeneralName::IPAddress(bytes) => ("IPAddress", ip_text(bytes)?),
                _ => return None,
            };
            Some((kind.to_owned(), value))
        })
        .collect()
}

/// An iPAddress general name as text: 4 bytes are IPv4, 16 IPv6; anything else (the
/// address-and-mask form belongs in name constraints, not here) is `None`.
fn ip_text(bytes: &[u8]) -> Option<String> {
    if let Ok(v4) = <[u8; 4]>::try_from(bytes) {
        return Some(Ipv4Addr::from(v4).to_string());
    }
    let v6 = <[u8; 16]>::try_from(bytes).ok()?;
    Some(Ipv6Addr::from(v6).to_string())
}

/// Groups (name, value) pairs by name, in order of each name's first appearance, values in
/// order, and prefixes the names.
fn grouped(prefix: &str, pairs: &[(String, String)], out: &mut Vec<(String, Vec<String>)>) {
    let start = out.len();
    for (name, value) in pairs {
        let full = format!("{prefix}{name}");
        match out[start..].iter_mut().find(|(n, _)| *n == full) {
            Some((_, values)) => values.push(value.clone()),
            None => out.push((full, vec![value.clone()])),
        }
    }
}

impl ParsedCertificate {
    /// The serial number as AWS IoT's `iot:Certificate.SerialNumber` has it: the decimal form
    /// of the unsigned number (`92:12:85:cb:b7:a5:e0:86` is `10525622389124227206`, the
    /// example in AWS's documentation of the variable). Same number as [`Self::serial_hex`].
    pub fn serial_decimal(&self) -> String {
        BigUint::parse_bytes(self.serial_hex.as_bytes(), 16)
            .map_or_else(|| "0".to_owned(), |n| n.to_string())
    }

    /// AWS IoT's certificate policy variables for this certificate, each with all its values in
    /// certificate order, for `ferrule_policy::Context::set_certificate_attribute` (which adds
    /// the `.1` / `.List` forms and keeps the first five values):
    ///
    /// - `iot:Certificate.Subject.<Attribute>` for each of [`Self::subject_attributes`], then
    ///   `iot:Certificate.Issuer.<Attribute>`;
    /// - `iot:Certificate.Subject.AlternativeName.<Kind>` for [`Self::subject_alt_names`], then
    ///   `iot:Certificate.Issuer.AlternativeName.<Kind>`;
    /// - `iot:Certificate.SerialNumber`: [`Self::serial_decimal`], as AWS documents it;
    /// - `iot:Certificate.AvailableKeys`: the full names of all the variables above (AWS: "the
    ///   name of all certificate policy variables that contain values"). Whether AWS lists
    ///   the names with the `iot:Certificate.` prefix, and in which order, is not documented;
    ///   this gives the names exactly as a policy writes them, in the order above.
    ///
    /// Variables without a value are absent, as in AWS, so a policy that uses them denies.
    pub fn policy_variables(&self) -> Vec<(String, Vec<String>)> {
        let mut out = Vec::new();
        grouped(
            &format!("{PREFIX}Subject."),
            &self.subject_attributes,
            &mut out,
        );
        grouped(
            &format!("{PREFIX}Issuer."),
            &self.issuer_attributes,
            &mut out,
        );
        grouped(
            &format!("{PREFIX}Subject.AlternativeName."),
            &self.subject_alt_names,
            &mut out,
        );
        grouped(
            &format!("{PREFIX}Issuer.AlternativeName."),
            &self.issuer_alt_names,
            &mut out,
        );
        out.push((format!("{PREFIX}SerialNumber"), vec![self.serial_decimal()]));
        let keys = out.iter().map(|(name, _)| name.clone()).collect();
        out.push((format!("{PREFIX}AvailableKeys"), keys));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_addresses_as_text() {
        assert_eq!(ip_text(&[192, 0, 2, 7]).as_deref(), Some("192.0.2.7"));
        let mut v6 = [0u8; 16];
        v6[..4].copy_from_slice(&[0x20, 0x01, 0x0d, 0xb8]);
        v6[15] = 1;
        assert_eq!(ip_text(&v6).as_deref(), Some("2001:db8::1"));
        assert_eq!(ip_text(&[10, 0, 0, 0, 255, 0, 0, 0]), None);
        assert_eq!(ip_text(&[]), None);
    }

    #[test]
    fn pairs_group_by_name_in_order() {
        let pairs: Vec<(String, String)> = [("OU", "a"), ("CN", "x"), ("OU", "b")]
            .map(|(n, v)| (n.to_owned(), v.to_owned()))
            .to_vec();
        let mut out = vec![("Earlier.OU".to_owned(), vec!["z".to_owned()])];
        grouped("P.", &pairs, &mut out);
        assert_eq!(
            out,
            [
                ("Earlier.OU".to_owned(), vec!["z".to_owned()]),
                ("P.OU".to_owned(), vec!["a".to_owned(), "b".to_owned()]),
                ("P.CN".to_owned(), vec!["x".to_owned()]),
            ]
        );
    }
}

//! Distinguished names as RFC 4514 strings, and attribute values as text.

use x509_parser::der_parser::asn1_rs::{Class, Tag};
use x509_parser::x509::{AttributeTypeAndValue, X509Name};

use crate::id::hex;

/// Short names for attribute types: RFC 4514's own list, then the names OpenSSL prints for
/// the other common ones (so that the output matches `-nameopt RFC2253`).
const SHORT_NAMES: &[(&str, &str)] = &[
    ("2.5.4.3", "CN"),
    ("2.5.4.7", "L"),
    ("2.5.4.8", "ST"),
    ("2.5.4.10", "O"),
    ("2.5.4.11", "OU"),
    ("2.5.4.6", "C"),
    ("2.5.4.9", "STREET"),
    ("0.9.2342.19200300.100.1.25", "DC"),
    ("0.9.2342.19200300.100.1.1", "UID"),
    ("2.5.4.4", "SN"),
    ("2.5.4.5", "serialNumber"),
    ("2.5.4.12", "title"),
    ("2.5.4.15", "businessCategory"),
    ("2.5.4.17", "postalCode"),
    ("2.5.4.42", "GN"),
    ("2.5.4.43", "initials"),
    ("2.5.4.44", "generationQualifier"),
    ("2.5.4.46", "dnQualifier"),
    ("2.5.4.65", "pseudonym"),
    ("1.2.840.113549.1.9.1", "emailAddress"),
];

/// The OID of commonName.
pub(crate) const COMMON_NAME: &str = "2.5.4.3";

/// Formats `name` as RFC 4514 does: RDNs from last to first, separated by `,`; attributes of
/// a multi-valued RDN joined by `+`; string values escaped; other values as `#` and the hex
/// of their DER. Within a multi-valued RDN the attributes are reversed too (their order
/// carries no meaning), so the result is exactly what `openssl -nameopt RFC2253` prints.
pub(crate) fn rfc4514(name: &X509Name<'_>) -> String {
    let rdns: Vec<String> = name
        .iter()
        .map(|rdn| {
            let attrs: Vec<_> = rdn.iter().collect();
            attrs
                .into_iter()
                .rev()
                .map(|attr| {
                    let oid = attr.attr_type().to_id_string();
                    let ty = SHORT_NAMES
                        .iter()
                        .find(|(o, _)| *o == oid)
                        .map_or(oid.as_str(), |(_, short)| short);
                    let value = match attr_string(attr) {
                        Some(text) => escape(&text),
                        None => format!("#{}", hex(&value_der(attr))),
                    };
                    format!("{ty}={value}")
                })
                .collect::<Vec<_>>()
                .join("+")
        })
        .collect();
    rdns.into_iter().rev().collect::<Vec<_>>().join(",")
}

/// The first commonName of `name` whose value is a string.
pub(crate) fn common_name(name: &X509Name<'_>) -> Option<String> {
    name.iter_attributes()
        .filter(|attr| attr.attr_type().to_id_string() == COMMON_NAME)
        .find_map(attr_string)
}

/// The value of an attribute as text, for the ASN.1 string types X.520 names use. UTF-8,
/// Printable, IA5, Numeric and Visible strings are taken as they are (if they are UTF-8);
/// T.61 as Latin-1 (what it means in practice); BMP as UTF-16 and Universal as UTF-32, both
/// big-endian. Anything else, or an invalid encoding, is `None`.
pub(crate) fn attr_string(attr: &AttributeTypeAndValue<'_>) -> Option<String> {
    let value = attr.attr_value();
    if value.header.class() != Class::Universal || value.header.is_constructed() {
        return None;
    }
    let data: &[u8] = value.data;
    match value.header.tag() {
        Tag::Utf8String
        | Tag::PrintableString
        | Tag::Ia5String
        | Tag::NumericString
        | Tag::VisibleString => std::str::from_utf8(data).ok().map(str::to_owned),
        Tag::T61String => Some(data.iter().map(|&b| char::from(b)).collect()),
        Tag::BmpString => {
            if !data.len().is_multiple_of(2) {
                return None;
            }
            let units: Vec<u16> = data
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]))
                .collect();
            String::from_utf16(&units).ok()
        }
        Tag::UniversalString => {
            if !data.len().is_multiple_of(4) {
                return None;
            }
            data.chunks_exact(4)
                .map(|c| char::from_u32(u32::from_be_bytes([c[0], c[1], c[2], c[3]])))
                .collect()
        }
        _ => None,
    }
}

/// RFC 4514 section 2.4 escaping, plus control characters as `\XX` (as OpenSSL does).
fn escape(value: &str) -> String {
    let mut out = String::with_capacity(value.len());
    let last = value.chars().count().saturating_sub(1);
    for (i, c) in value.chars().enumerate() {
        match c {
            '"' | '+' | ',' | ';' | '<' | '>' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            '#' if i == 0 => out.push_str("\\#"),
            ' ' if i == 0 || i == last => out.push_str("\\ "),
            c if c.is_ascii_control() => out.push_str(&format!("\\{:02X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out
}

/// Re-encodes an attribute value as DER (identifier, length, contents), for values that are
/// not strings.
fn value_der(attr: &AttributeTypeAndValue<'_>) -> Vec<u8> {
    let value = attr.attr_value();
    let header = &value.header;
    let data: &[u8] = value.data;
    let class = match header.class() {
        Class::Universal => 0u8,
        Class::Application => 0x40,
        Class::ContextSpecific => 0x80,
        Class::Private => 0xc0,
    };
    let constructed = if header.is_constructed() { 0x20 } else { 0 };
    let mut out = Vec::with_capacity(data.len() + 8);
    let tag = header.tag().0;
    if tag < 31 {
        // Checked just above: fits in the low five bits.
        out.push(class | constructed | tag as u8);
    } else {
        out.push(class | constructed | 0x1f);
        let mut groups = Vec::new();
        let mut t = tag;
        loop {
            groups.push((t & 0x7f) as u8);
            t >>= 7;
            if t == 0 {
                break;
            }
        }
        for (i, g) in groups.iter().enumerate().rev() {
            out.push(if i == 0 { *g } else { g | 0x80 });
        }
    }
    let len = data.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes: Vec<u8> = len
            .to_be_bytes()
            .into_iter()
            .skip_while(|&b| b == 0)
            .collect();
        out.push(0x80 | bytes.len() as u8);
        out.extend(bytes);
    }
    out.extend_from_slice(data);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_rfc4514_specials() {
        assert_eq!(escape("a,b+c"), "a\\,b\\+c");
        assert_eq!(escape("#x"), "\\#x");
        assert_eq!(escape("x#"), "x#");
        assert_eq!(escape(" x "), "\\ x\\ ");
        assert_eq!(escape("a\"b<c>d;e\\f"), "a\\\"b\\<c\\>d\\;e\\\\f");
        assert_eq!(escape("a\nb"), "a\\0Ab");
        assert_eq!(escape("é"), "é");
        assert_eq!(escape(""), "");
    }
}

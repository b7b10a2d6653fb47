//! A strict check of the outer DER structure of signed objects.
//!
//! x509-parser is lenient where it does not matter for reading (it ignores the class bits of
//! a SEQUENCE tag, for example), but a certificate id is a hash of the exact bytes: two
//! encodings of one certificate must not both be accepted. Everything inside the signed part
//! is protected by the signature; this checks the parts that are not.

/// One DER element: its tag byte, its contents, and all its bytes.
struct Tlv<'a> {
    tag: u8,
    contents: &'a [u8],
    whole: &'a [u8],
}

const SEQUENCE: u8 = 0x30;
const BIT_STRING: u8 = 0x03;
const INTEGER: u8 = 0x02;
const VERSION: u8 = 0xa0;

/// Reads one element with a low-number tag and a definite, minimally encoded length.
fn read(input: &[u8]) -> Result<(Tlv<'_>, &[u8]), String> {
    let [tag, first, rest @ ..] = input else {
        return Err(truncated(input.len()));
    };
    if tag & 0x1f == 0x1f {
        return Err("an element has a high tag number, which no certificate uses".into());
    }
    let (len, rest) = match *first {
        n if n < 0x80 => (usize::from(n), rest),
        0x80 => return Err("an element has an indefinite length (BER, not DER)".into()),
        n => {
            let count = usize::from(n & 0x7f);
            if count > 4 || rest.len() < count {
                return Err(truncated(input.len()));
            }
            let (bytes, rest) = rest.split_at(count);
            if bytes[0] == 0 {
                return Err("an element's length is not minimally encoded (not DER)".into());
            }
            let len = bytes
                .iter()
                .fold(0usize, |acc, &b| (acc << 8) | usize::from(b));
            if len < 0x80 {
                return Err("an element's length is not minimally encoded (not DER)".into());
            }
            (len, rest)
        }
    };
    if rest.len() < len {
        return Err(format!(
            "the data ends early (an element says it has {len} bytes, {} follow): truncated?",
            rest.len()
        ));
    }
    let header = input.len() - rest.len();
    let (contents, after) = rest.split_at(len);
    Ok((
        Tlv {
            tag: *tag,
            contents,
            whole: &input[..header + len],
        },
        after,
    ))
}

fn truncated(len: usize) -> String {
    if len == 0 {
        "it is empty".into()
    } else {
        "the data ends early (truncated or not DER)".into()
    }
}

fn expect<'a>(input: &'a [u8], tag: u8, what: &str) -> Result<(Tlv<'a>, &'a [u8]), String> {
    let (tlv, rest) = read(input)?;
    if tlv.tag != tag {
        return Err(format!(
            "{what} has tag {:#04x} where {tag:#04x} belongs",
            tlv.tag
        ));
    }
    Ok((tlv, rest))
}

/// Checks `SEQUENCE { SEQUENCE signed, SEQUENCE algorithm, BIT STRING signature }` with
/// nothing before, between or after, and a signature without unused bits.
pub(crate) fn check_signed(der: &[u8]) -> Result<(), String> {
    shell(der).map(drop)
}

/// For a certificate that [`check_signed`] accepted and x509-parser parsed: the signature
/// algorithm inside the signed part has the same bytes as the one outside (RFC 5280
/// 4.1.1.2).
pub(crate) fn check_same_algorithm(der: &[u8]) -> Result<(), String> {
    let (signed, algorithm) = shell(der)?;
    let mut fields = signed.contents;
    let (first, rest) = read(fields)?;
    if first.tag == VERSION {
        fields = rest;
    }
    let (_serial, rest) = expect(fields, INTEGER, "the serial number")?;
    let (inner, _) = expect(rest, SEQUENCE, "the inner signature algorithm")?;
    if inner.whole != algorithm.whole {
        return Err(
            "the signature algorithm inside the signed part differs from the one outside it".into(),
        );
    }
    Ok(())
}

/// The signed part and the signature algorithm of a signed object.
fn shell(der: &[u8]) -> Result<(Tlv<'_>, Tlv<'_>), String> {
    let (outer, rest) = expect(der, SEQUENCE, "the outer SEQUENCE")?;
    if !rest.is_empty() {
        return Err(format!("{} bytes follow the end of the data", rest.len()));
    }
    let (signed, rest) = expect(outer.contents, SEQUENCE, "the signed part")?;
    let (algorithm, rest) = expect(rest, SEQUENCE, "the signature algorithm")?;
    let (signature, rest) = expect(rest, BIT_STRING, "the signature")?;
    if !rest.is_empty() {
        return Err("there is data after the signature".into());
    }
    if signature.contents.first() != Some(&0) {
        return Err("the signature is not a whole number of bytes".into());
    }
    Ok((signed, algorithm))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lengths_must_be_definite_and_minimal() {
        assert!(read(&[0x30, 0x80, 0, 0]).is_err());
        assert!(read(&[0x30, 0x81, 0x05, 1, 2, 3, 4, 5]).is_err());
        assert!(read(&[0x30, 0x82, 0x00, 0x81]).is_err());
        let (tlv, rest) = read(&[0x04, 0x02, 1, 2, 9]).expect("ok");
        assert_eq!(
            (tlv.tag, tlv.contents, rest),
            (0x04, &[1u8, 2][..], &[9u8][..])
        );
        assert_eq!(read(&[]).err().as_deref(), Some("it is empty"));
        let short = read(&[0x30, 0x05, 1]).err();
        assert!(short.is_some_and(|e| e.contains("truncated")));
    }
}

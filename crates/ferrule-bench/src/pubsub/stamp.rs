//! What every payload carries so that subscribers can measure latency, loss and duplicates
//! without talking to the publishers: the send time, the publisher and a sequence number.
//!
//! Two layouts. Binary: 16 bytes up front, then zero padding; the cheapest to write and read.
//! JSON: an object a topic rule can select from and filter on, e.g.
//! `{"temp":25,"r":"1a2b3c4d","p":0,"s":17,"t":123456789}`, where `r` is the run id (so that a
//! late message of an earlier run is not counted as this run's), and `temp` is 25 or, for the
//! messages [`is_cold`] picks, 15: a rule with `WHERE temp > 20` passes the first and drops the
//! second. The JSON reader finds its keys anywhere in an object, so a rule may add, drop or
//! reorder fields (`SELECT *, topic(2) AS device`) and the subscriber still reads the stamp.

use std::fmt::Write as _;

use bytes::{BufMut, BytesMut};

/// Send time (u64 ns), publisher (u32) and sequence number (u32), big-endian, then padding.
pub(crate) const STAMP_LEN: usize = 16;

/// `temp` of messages meant to pass a `WHERE temp > 20`.
const WARM: u32 = 25;
/// `temp` of messages meant to fail it.
const COLD: u32 = 15;

/// How the stamp is laid out in each payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum PayloadFormat {
    /// 16 bytes (send time, publisher, sequence), then zeros.
    Binary,
    /// A JSON object with `temp`, run id, publisher, sequence and send time, padded with a
    /// `pad` string up to the payload size.
    Json,
}

/// What a subscriber reads from a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    pub(super) sent_ns: u64,
    pub(super) publisher: u32,
    pub(super) seq: u32,
}

/// Whether message `seq` is one of the cold ones: every `every`-th (the last of each group of
/// `every`); none when `every` is 0.
pub(super) fn is_cold(seq: u32, every: u32) -> bool {
    every > 0 && seq % every == every - 1
}

/// How many of the messages `0..n` are cold.
pub(super) fn cold_before(n: u64, every: u32) -> u64 {
    if every == 0 { 0 } else { n / u64::from(every) }
}

/// Writes the binary stamp, then zeros up to `len` bytes.
pub(super) fn write_payload(buf: &mut BytesMut, len: usize, stamp: Stamp) {
    buf.reserve(len);
    buf.put_u64(stamp.sent_ns);
    buf.put_u32(stamp.publisher);
    buf.put_u32(stamp.seq);
    buf.put_bytes(0, len.saturating_sub(STAMP_LEN));
}

/// Writes the JSON object, padded to `len` bytes when the stamp alone is shorter by more than
/// the padding field itself (so payloads are `len` bytes or a few bytes over).
pub(super) fn write_json_payload(
    buf: &mut BytesMut,
    len: usize,
    stamp: Stamp,
    run_id: &str,
    cold: bool,
) {
    let mut text = String::with_capacity(len.max(96));
    let temp = if cold { COLD } else { WARM };
    // Writing to a String cannot fail.
    let _ = write!(
        text,
        r#"{{"temp":{temp},"r":"{run_id}","p":{},"s":{},"t":{}"#,
        stamp.publisher, stamp.seq, stamp.sent_ns
    );
    const PAD_FIELD: &str = r#","pad":"""#;
    // The closing brace, and the pad field's quotes and name.
    let fixed = text.len() + 1 + PAD_FIELD.len();
    if len > fixed {
        text.push_str(&PAD_FIELD[..PAD_FIELD.len() - 1]);
        text.extend(std::iter::repeat_n('x', len - fixed));
        text.push('"');
    }
    text.push('}');
    buf.extend_from_slice(text.as_bytes());
}

pub(super) fn read_stamp(payload: &[u8]) -> Option<Stamp> {
    let sent_ns = u64::from_be_bytes(payload.get(0..8)?.try_into().ok()?);
    let publisher = u32::from_be_bytes(payload.get(8..12)?.try_into().ok()?);
    let seq = u32::from_be_bytes(payload.get(12..16)?.try_into().ok()?);
    Some(Stamp {
        sent_ns,
        publisher,
        seq,
    })
}

/// Reads the stamp of a JSON payload of run `run_id`; `None` if it is not one (another run,
/// not JSON, a field missing).
pub(super) fn read_json_stamp(payload: &[u8], run_id: &str) -> Option<Stamp> {
    if json_value(payload, b"r")? != format!("\"{run_id}\"").as_bytes() {
        return None;
    }
    let number = |key: &[u8]| -> Option<u64> {
        let digits = json_value(payload, key)?;
        std::str::from_utf8(digits).ok()?.parse().ok()
    };
    Some(Stamp {
        sent_ns: number(b"t")?,
        publisher: u32::try_from(number(b"p")?).ok()?,
        seq: u32::try_from(number(b"s")?).ok()?,
    })
}

/// The raw text of the value of `"key"` in a flat JSON object: a number, or a string with its
/// quotes (no escapes inside). An occurrence of `"key"` not followed by a colon is a string
/// value, not the key, and is skipped.
fn json_value<'a>(text: &'a [u8], key: &[u8]) -> Option<&'a [u8]> {
    let mut from = 0;
    loop {
        let at = from + find_quoted(&text[from..], key)?;
        let mut i = at + key.len() + 2;
        from = i;
        while text.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        if text.get(i) != Some(&b':') {
            continue;
        }
        i += 1;
        while text.get(i).is_some_and(u8::is_ascii_whitespace) {
            i += 1;
        }
        let start = i;
        if text.get(i) == Some(&b'"') {
            let len = text[i + 1..].iter().position(|&c| c == b'"')?;
            return Some(&text[start..i + len + 2]);
        }
        while text
            .get(i)
            .is_some_and(|c| c.is_ascii_digit() || matches!(c, b'-' | b'.' | b'e' | b'E' | b'+'))
        {
            i += 1;
        }
        return (i > start).then(|| &text[start..i]);
    }
}

/// Where `"key"` (with its quotes) starts in `text`.
fn find_quoted(text: &[u8], key: &[u8]) -> Option<usize> {
    let n = key.len() + 2;
    text.windows(n)
        .position(|w| w[0] == b'"' && w[n - 1] == b'"' && &w[1..n - 1] == key)
}

#[cfg(test)]
mod tests {
    use super::*;

    const STAMP: Stamp = Stamp {
        sent_ns: 0x0102_0304_0506_0708,
        publisher: 7,
        seq: 99,
    };

    #[test]
    fn stamp_round_trips() {
        let mut buf = BytesMut::new();
        write_payload(&mut buf, 64, STAMP);
        assert_eq!(buf.len(), 64);
        assert_eq!(read_stamp(&buf), Some(STAMP));
        assert_eq!(read_stamp(&buf[..15]), None);
    }

    #[test]
    fn json_stamp_round_trips_padded_to_size() {
        for len in [16, 100, 1000] {
            let mut buf = BytesMut::new();
            write_json_payload(&mut buf, len, STAMP, "1a2b3c4d", false);
            let text = std::str::from_utf8(&buf).expect("JSON is text");
            let parsed: serde_json::Value = serde_json::from_str(text).expect("valid JSON");
            assert_eq!(parsed["temp"], 25);
            if len < 64 {
                assert!(parsed.get("pad").is_none(), "{text}");
            } else {
                assert_eq!(buf.len(), len, "{text}");
            }
            assert_eq!(read_json_stamp(&buf, "1a2b3c4d"), Some(STAMP), "{text}");
            assert_eq!(read_json_stamp(&buf, "00000000"), None);
        }
        let mut buf = BytesMut::new();
        write_json_payload(&mut buf, 64, STAMP, "1a2b3c4d", true);
        assert!(buf.starts_with(br#"{"temp":15,"#));
    }

    #[test]
    fn json_stamp_is_found_whatever_a_rule_did_to_the_object() {
        let republished =
            br#"{ "device" : "s", "s": 99,"temp":25, "p" :7, "r":"1a2b3c4d", "t": 72623859790382856}"#;
        assert_eq!(read_json_stamp(republished, "1a2b3c4d"), Some(STAMP));
        assert_eq!(read_json_stamp(b"not json", "1a2b3c4d"), None);
        assert_eq!(
            read_json_stamp(br#"{"r":"1a2b3c4d","p":1}"#, "1a2b3c4d"),
            None
        );
    }

    #[test]
    fn every_nth_message_is_cold() {
        let cold: Vec<u32> = (0..6).filter(|&s| is_cold(s, 2)).collect();
        assert_eq!(cold, [1, 3, 5]);
        assert!(!(0..100).any(|s| is_cold(s, 0)));
        assert_eq!(cold_before(6, 2), 3);
        assert_eq!(cold_before(7, 2), 3);
        assert_eq!(cold_before(7, 3), 2);
        assert_eq!(cold_before(7, 0), 0);
    }
}

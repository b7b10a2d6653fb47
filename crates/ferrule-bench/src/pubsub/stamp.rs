//! The first bytes of every payload: what subscribers need to measure latency, loss and
//! duplicates without talking to the publishers.

use bytes::{BufMut, BytesMut};

/// Send time (u64 ns), publisher (u32) and sequence number (u32), big-endian, then padding.
pub(crate) const STAMP_LEN: usize = 16;

/// What a subscriber reads from the front of a payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Stamp {
    pub(super) sent_ns: u64,
    pub(super) publisher: u32,
    pub(super) seq: u32,
}

pub(super) fn write_payload(buf: &mut BytesMut, len: usize, stamp: Stamp) {
    buf.reserve(len);
    buf.put_u64(stamp.sent_ns);
    buf.put_u32(stamp.publisher);
    buf.put_u32(stamp.seq);
    buf.put_bytes(0, len.saturating_sub(STAMP_LEN));
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamp_round_trips() {
        let stamp = Stamp {
            sent_ns: 0x0102_0304_0506_0708,
            publisher: 7,
            seq: 99,
        };
        let mut buf = BytesMut::new();
        write_payload(&mut buf, 64, stamp);
        assert_eq!(buf.len(), 64);
        assert_eq!(read_stamp(&buf), Some(stamp));
        assert_eq!(read_stamp(&buf[..15]), None);
    }
}

//! Property tests: every valid packet round-trips, decoding is incremental, and no input panics.

mod common;

use bytes::BytesMut;
use common::{encode_to_vec, versioned_packet};
use ferrule_mqtt::*;
use proptest::prelude::*;

const NO_LIMIT: u32 = u32::MAX;

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn encode_then_decode_is_identity((v, packet) in versioned_packet()) {
        let mut buf = encode_to_vec(&packet, v);
        prop_assert_eq!(buf.len(), encoded_len(&packet, v));
        let decoded = decode(&mut buf, v, NO_LIMIT);
        prop_assert_eq!(decoded, Ok(Some(packet)));
        prop_assert!(buf.is_empty());
    }

    #[test]
    fn every_prefix_needs_more_bytes((v, packet) in versioned_packet()) {
        let full = encode_to_vec(&packet, v);
        for len in 0..full.len() {
            let mut buf = BytesMut::from(&full[..len]);
            prop_assert_eq!(decode(&mut buf, v, NO_LIMIT), Ok(None), "prefix of {} bytes", len);
            prop_assert_eq!(&buf[..], &full[..len]);
        }
    }

    #[test]
    fn two_packets_decode_in_order(
        (v, first) in versioned_packet(),
        second in prop_oneof![Just(Packet::PingReq), Just(Packet::PingResp)],
        first_again in any::<bool>(),
    ) {
        let mut buf = encode_to_vec(&first, v);
        let (a, b) = if first_again { (&first, &second) } else { (&second, &first) };
        let mut buf2 = encode_to_vec(a, v);
        buf2.extend_from_slice(&encode_to_vec(b, v));
        prop_assert_eq!(decode(&mut buf2, v, NO_LIMIT), Ok(Some(a.clone())));
        prop_assert_eq!(decode(&mut buf2, v, NO_LIMIT), Ok(Some(b.clone())));
        prop_assert_eq!(decode(&mut buf2, v, NO_LIMIT), Ok(None));
        // And two arbitrary packets back to back, split at every byte boundary of the second.
        let second_bytes = encode_to_vec(&first, v);
        buf.extend_from_slice(&second_bytes);
        let total = buf.len();
        prop_assert_eq!(decode(&mut buf, v, NO_LIMIT), Ok(Some(first.clone())));
        prop_assert_eq!(buf.len(), total - second_bytes.len());
        prop_assert_eq!(decode(&mut buf, v, NO_LIMIT), Ok(Some(first.clone())));
    }

    #[test]
    fn packet_size_limit_is_exact((v, packet) in versioned_packet()) {
        let full = encode_to_vec(&packet, v);
        let size = u32::try_from(full.len()).expect("small packet");
        let mut at_limit = full.clone();
        prop_assert_eq!(decode(&mut at_limit, v, size), Ok(Some(packet)));
        let mut over = full.clone();
        let too_large = decode(&mut over, v, size - 1);
        prop_assert_eq!(too_large, Err(DecodeError::PacketTooLarge { size: full.len(), max: size - 1 }));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256), v5 in any::<bool>()) {
        let v = if v5 { ProtocolVersion::V5 } else { ProtocolVersion::V311 };
        drain(&bytes, v);
    }

    #[test]
    fn mutated_packets_never_panic_and_what_decodes_reencodes(
        (v, packet) in versioned_packet(),
        edits in proptest::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut bytes = encode_to_vec(&packet, v).to_vec();
        for (index, byte) in edits {
            let i = index.index(bytes.len());
            bytes[i] = byte;
        }
        for decoded in drain(&bytes, v) {
            // What the decoder accepts is valid, so it encodes, and decodes back to itself.
            let protocol = match &decoded { Packet::Connect(c) => c.protocol, _ => v };
            let mut again = BytesMut::new();
            prop_assert_eq!(encode(&decoded, protocol, &mut again), Ok(()));
            prop_assert_eq!(decode(&mut again, protocol, NO_LIMIT), Ok(Some(decoded)));
        }
    }
}

/// Decodes packets until the input runs out or is rejected.
fn drain(bytes: &[u8], v: ProtocolVersion) -> Vec<Packet> {
    let mut buf = BytesMut::from(bytes);
    let mut out = Vec::new();
    while let Ok(Some(packet)) = decode(&mut buf, v, NO_LIMIT) {
        out.push(packet);
    }
    out
}

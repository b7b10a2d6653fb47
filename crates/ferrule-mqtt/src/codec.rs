//! Wire primitives: a bounds-checked reader over one packet's body, and the matching writers.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use crate::error::{DecodeError, EncodeError};

/// The largest remaining length a 4-byte variable byte integer can carry.
pub const MAX_REMAINING_LENGTH: usize = 268_435_455;

/// Longest string or binary field: the length prefix is a u16.
pub(crate) const MAX_FIELD_LEN: usize = u16::MAX as usize;

/// Outcome of reading a variable byte integer from a buffer that may still be filling up.
pub(crate) enum VarInt {
    /// The value and how many bytes encoded it.
    Value(u32, usize),
    /// More bytes are needed.
    Incomplete,
    /// Longer than 4 bytes, or not minimally encoded.
    Malformed,
}

/// Reads a variable byte integer from the start of `bytes`.
pub(crate) fn read_var_int(bytes: &[u8]) -> VarInt {
    let mut value: u32 = 0;
    for (i, &byte) in bytes.iter().enumerate().take(4) {
        value |= u32::from(byte & 0x7F) << (7 * i);
        if byte & 0x80 == 0 {
            // A zero final byte after a continuation means a longer encoding than needed.
            if i > 0 && byte == 0 {
                return VarInt::Malformed;
            }
            return VarInt::Value(value, i + 1);
        }
    }
    if bytes.len() >= 4 {
        VarInt::Malformed
    } else {
        VarInt::Incomplete
    }
}

/// Bytes needed to encode `value` as a variable byte integer.
pub(crate) fn var_int_len(value: usize) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Length on the wire of a length-prefixed string or binary field.
pub(crate) fn field_len(len: usize) -> usize {
    2 + len
}

/// Writes a variable byte integer; `value` must be at most [`MAX_REMAINING_LENGTH`].
pub(crate) fn put_var_int(buf: &mut BytesMut, value: usize) {
    debug_assert!(value <= MAX_REMAINING_LENGTH);
    let mut value = value;
    loop {
        let mut byte = (value % 128) as u8;
        value /= 128;
        if value > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if value == 0 {
            return;
        }
    }
}

/// Writes a length-prefixed field whose length was checked by [`check_field`].
pub(crate) fn put_field(buf: &mut BytesMut, data: &[u8]) {
    debug_assert!(data.len() <= MAX_FIELD_LEN);
    buf.put_u16(data.len() as u16);
    buf.put_slice(data);
}

/// Checks that a string or binary field fits its u16 length prefix.
pub(crate) fn check_field(what: &'static str, len: usize) -> Result<(), EncodeError> {
    if len > MAX_FIELD_LEN {
        Err(EncodeError::FieldTooLong { what, len })
    } else {
        Ok(())
    }
}

/// A bounds-checked cursor over one packet body. Binary fields are split off without copying.
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Self {
        Reader { buf }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.buf.is_empty()
    }

    pub(crate) fn u8(&mut self, what: &'static str) -> Result<u8, DecodeError> {
        if self.buf.is_empty() {
            return Err(DecodeError::Truncated { what });
        }
        Ok(self.buf.get_u8())
    }

    pub(crate) fn u16(&mut self, what: &'static str) -> Result<u16, DecodeError> {
        if self.buf.len() < 2 {
            return Err(DecodeError::Truncated { what });
        }
        Ok(self.buf.get_u16())
    }

    pub(crate) fn u32(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        if self.buf.len() < 4 {
            return Err(DecodeError::Truncated { what });
        }
        Ok(self.buf.get_u32())
    }

    pub(crate) fn var_int(&mut self, what: &'static str) -> Result<u32, DecodeError> {
        match read_var_int(&self.buf) {
            VarInt::Value(value, len) => {
                self.buf.advance(len);
                Ok(value)
            }
            VarInt::Incomplete => Err(DecodeError::Truncated { what }),
            VarInt::Malformed => Err(DecodeError::MalformedVarInt { what }),
        }
    }

    /// Splits off the next `len` bytes.
    pub(crate) fn take(&mut self, len: usize, what: &'static str) -> Result<Bytes, DecodeError> {
        if self.buf.len() < len {
            return Err(DecodeError::Truncated { what });
        }
        Ok(self.buf.split_to(len))
    }

    /// A length-prefixed binary field.
    pub(crate) fn binary(&mut self, what: &'static str) -> Result<Bytes, DecodeError> {
        let len = self.u16(what)?;
        self.take(usize::from(len), what)
    }

    /// A length-prefixed UTF-8 string, handed to `f` without copying.
    pub(crate) fn with_str<T>(
        &mut self,
        what: &'static str,
        f: impl FnOnce(&str) -> T,
    ) -> Result<T, DecodeError> {
        let raw = self.binary(what)?;
        if raw.contains(&0) {
            return Err(DecodeError::NulInString { what });
        }
        let s = std::str::from_utf8(&raw).map_err(|_| DecodeError::InvalidUtf8 { what })?;
        Ok(f(s))
    }

    /// A length-prefixed UTF-8 string.
    pub(crate) fn string(&mut self, what: &'static str) -> Result<String, DecodeError> {
        self.with_str(what, str::to_owned)
    }

    /// The rest of the body.
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }

    /// Fails if bytes are left.
    pub(crate) fn finish(&self, kind: &'static str) -> Result<(), DecodeError> {
        if self.buf.is_empty() {
            Ok(())
        } else {
            Err(DecodeError::TrailingBytes { kind })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn var_int_round_trip_at_the_boundaries() {
        for value in [
            0,
            127,
            128,
            16_383,
            16_384,
            2_097_151,
            2_097_152,
            MAX_REMAINING_LENGTH,
        ] {
            let mut buf = BytesMut::new();
            put_var_int(&mut buf, value);
            assert_eq!(buf.len(), var_int_len(value));
            match read_var_int(&buf) {
                VarInt::Value(v, len) => {
                    assert_eq!(v as usize, value);
                    assert_eq!(len, buf.len());
                }
                _ => panic!("{value} did not decode"),
            }
        }
    }

    #[test]
    fn var_int_rejects_five_bytes_and_padding() {
        assert!(matches!(
            read_var_int(&[0xFF, 0xFF, 0xFF, 0xFF, 0x01]),
            VarInt::Malformed
        ));
        assert!(matches!(read_var_int(&[0x80, 0x00]), VarInt::Malformed));
        assert!(matches!(read_var_int(&[0xFF, 0xFF]), VarInt::Incomplete));
        assert!(matches!(read_var_int(&[]), VarInt::Incomplete));
    }
}

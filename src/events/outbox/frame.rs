//! One outbox record on disk: `[length: u32 LE][crc32 of payload: u32 LE][payload]`.
//!
//! The checksum tells a complete record from one torn by a crash mid-write or damaged on disk;
//! the length lets a reader step over a damaged record whose header is still plausible.

use std::io::{self, Read};

pub const HEADER_BYTES: usize = 8;
/// No record is this large (payloads are capped well below it); a longer length field is
/// garbage, so nothing after it in the segment can be trusted.
pub const MAX_PAYLOAD_BYTES: u32 = 64 * 1024 * 1024;

/// Appends the frame of `payload` to `out`.
pub fn encode(payload: &[u8], out: &mut Vec<u8>) {
    // Payloads are capped far below u32::MAX by `events.max_payload_bytes`.
    let len = u32::try_from(payload.len()).unwrap_or(u32::MAX);
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(payload).to_le_bytes());
    out.extend_from_slice(payload);
}

/// The size of `payload`'s frame on disk.
pub fn framed_len(payload: &[u8]) -> u64 {
    (HEADER_BYTES + payload.len()) as u64
}

/// What the next bytes of a segment hold.
#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// A complete record whose checksum matches; `len` bytes on disk.
    Record { payload: Vec<u8>, len: u64 },
    /// A complete frame whose checksum does not match: skip its `len` bytes.
    Corrupt { len: u64 },
    /// The segment ends inside a frame, or the length field is garbage: the rest of the
    /// segment cannot be read.
    Torn,
    /// The segment ends cleanly.
    End,
}

/// Reads the next frame from `reader`.
pub fn read(reader: &mut impl Read) -> io::Result<Frame> {
    let mut header = [0u8; HEADER_BYTES];
    let got = read_up_to(reader, &mut header)?;
    if got == 0 {
        return Ok(Frame::End);
    }
    if got < HEADER_BYTES {
        return Ok(Frame::Torn);
    }
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]);
    let crc = u32::from_le_bytes([header[4], header[5], header[6], header[7]]);
    if len > MAX_PAYLOAD_BYTES {
        return Ok(Frame::Torn);
    }
    let mut payload = vec![0u8; len as usize];
    if read_up_to(reader, &mut payload)? < payload.len() {
        return Ok(Frame::Torn);
    }
    let on_disk = HEADER_BYTES as u64 + u64::from(len);
    if crc32fast::hash(&payload) != crc {
        return Ok(Frame::Corrupt { len: on_disk });
    }
    Ok(Frame::Record {
        payload,
        len: on_disk,
    })
}

/// Fills `buf` as far as the reader allows; fewer bytes only at end of file.
fn read_up_to(reader: &mut impl Read, buf: &mut [u8]) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match reader.read(&mut buf[filled..]) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(filled)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frames(payloads: &[&[u8]]) -> Vec<u8> {
        let mut out = Vec::new();
        for p in payloads {
            encode(p, &mut out);
        }
        out
    }

    #[test]
    fn round_trip() {
        let bytes = frames(&[b"one", b"", b"three"]);
        let mut reader = bytes.as_slice();
        for expected in [&b"one"[..], b"", b"three"] {
            match read(&mut reader).expect("read") {
                Frame::Record { payload, len } => {
                    assert_eq!(payload, expected);
                    assert_eq!(len, framed_len(expected));
                }
                other => panic!("expected a record, got {other:?}"),
            }
        }
        assert_eq!(read(&mut reader).expect("read"), Frame::End);
    }

    #[test]
    fn a_flipped_bit_is_a_checksum_mismatch_and_the_next_record_still_reads() {
        let mut bytes = frames(&[b"damaged", b"fine"]);
        bytes[HEADER_BYTES + 2] ^= 0x40;
        let mut reader = bytes.as_slice();
        assert_eq!(
            read(&mut reader).expect("read"),
            Frame::Corrupt {
                len: framed_len(b"damaged")
            }
        );
        assert!(
            matches!(read(&mut reader).expect("read"), Frame::Record { payload, .. } if payload == b"fine")
        );
    }

    #[test]
    fn every_torn_write_is_detected() {
        let whole = frames(&[b"complete", b"torn by a crash"]);
        let first = framed_len(b"complete") as usize;
        for cut in first + 1..whole.len() {
            let mut reader = &whole[..cut];
            assert!(matches!(
                read(&mut reader).expect("read"),
                Frame::Record { .. }
            ));
            assert_eq!(
                read(&mut reader).expect("read"),
                Frame::Torn,
                "cut at {cut}"
            );
        }
    }

    #[test]
    fn a_garbage_length_is_torn_not_an_allocation() {
        let mut bytes = vec![0xff; HEADER_BYTES];
        bytes.extend_from_slice(b"rest");
        assert_eq!(read(&mut bytes.as_slice()).expect("read"), Frame::Torn);
    }
}

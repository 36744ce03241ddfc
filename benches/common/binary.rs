//! The binary protocol for the load generator: request frames built and
//! response frames read, no more than the `binary` workload needs.

use super::push_key;

/// Appends a binary set (flags 0, no expiry) or get frame for key `n`.
pub fn push(out: &mut Vec<u8>, set: bool, prefix: &str, n: u64, value: &[u8]) {
    let at = out.len();
    let (opcode, extlen) = if set { (0x01, 8) } else { (0x00, 0) };
    out.extend_from_slice(&[0x80, opcode, 0, 0, extlen, 0, 0, 0]);
    out.extend_from_slice(&[0; 16]);
    out.extend(std::iter::repeat_n(0, usize::from(extlen)));
    let key_at = out.len();
    push_key(out, prefix, n);
    let keylen = out.len() - key_at;
    if set {
        out.extend_from_slice(value);
    }
    let body = (out.len() - at - 24) as u32;
    out[at + 2..at + 4].copy_from_slice(&(keylen as u16).to_be_bytes());
    out[at + 8..at + 12].copy_from_slice(&body.to_be_bytes());
}

/// The first binary response in `buf`: whether it is a get's hit, whether
/// it is a success or a miss (not an error), and its length; `None` until
/// it is whole.
pub fn parse(buf: &[u8]) -> Option<(bool, bool, usize)> {
    if buf.len() < 24 {
        return None;
    }
    let body = u32::from_be_bytes([buf[8], buf[9], buf[10], buf[11]]) as usize;
    let len = 24 + body;
    if buf.len() < len || buf[0] != 0x81 {
        return (buf[0] != 0x81).then_some((false, false, buf.len()));
    }
    let status = u16::from_be_bytes([buf[6], buf[7]]);
    Some((buf[1] == 0x00 && status == 0, status <= 1, len))
}

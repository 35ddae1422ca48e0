//! Encodings Google's APIs share: base64 (standard alphabet, padded; decoding also url-safe and
//! unpadded, as PEM and JWTs use), hex, opaque etags, and RFC 3339 timestamps of emulated time.

use std::time::Duration;

/// Emulated time zero, as wall-clock time: 2026-01-01T00:00:00Z.
const EPOCH_UNIX_SECONDS: u64 = 1_767_225_600;

/// Standard, padded base64, as Google's `format: byte` fields use.
pub fn base64(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(bytes.len().div_ceil(3) * 4);
    for chunk in bytes.chunks(3) {
        let n = chunk
            .iter()
            .enumerate()
            .fold(0u32, |n, (i, b)| n | u32::from(*b) << (16 - 8 * i));
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[(n >> (18 - 6 * i) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// Decodes base64 in the standard (`+/`) or url-safe (`-_`) alphabet, padded or not; `None` when
/// the text is not base64 (whitespace included: strip it first).
pub fn base64_decode(text: &str) -> Option<Vec<u8>> {
    let text = text.trim_end_matches('=');
    if text.len() % 4 == 1 {
        return None;
    }
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut bits, mut count) = (0u32, 0u32);
    for c in text.bytes() {
        let value = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' | b'-' => 62,
            b'/' | b'_' => 63,
            _ => return None,
        };
        bits = bits << 6 | u32::from(value);
        count += 6;
        if count >= 8 {
            count -= 8;
            out.push((bits >> count) as u8);
            bits &= (1 << count) - 1;
        }
    }
    Some(out)
}

/// Lowercase hex.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An opaque etag for a version number: eight bytes led by 0x07, like Google's `BwX…` etags.
pub fn etag(version: u64) -> String {
    base64(&((0x07 << 56) | (version & 0x00ff_ffff_ffff_ffff)).to_be_bytes())
}

/// An RFC 3339 timestamp (UTC, nanoseconds) for an instant of emulated time.
pub fn timestamp(now: Duration) -> String {
    let seconds = EPOCH_UNIX_SECONDS + now.as_secs();
    let (days, rest) = (seconds / 86_400, seconds % 86_400);
    // Civil date from days since 1970-01-01 (Howard Hinnant's algorithm).
    let z = days as i64 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}.{:09}Z",
        rest / 3600,
        rest % 3600 / 60,
        rest % 60,
        now.subsec_nanos()
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn base64_matches_known_vectors_and_etags_differ() {
        assert_eq!(super::base64(b""), "");
        assert_eq!(super::base64(b"f"), "Zg==");
        assert_eq!(super::base64(b"fo"), "Zm8=");
        assert_eq!(super::base64(b"foobar"), "Zm9vYmFy");
        assert_ne!(super::etag(1), super::etag(2));
        assert!(super::etag(1).starts_with("Bw"));
        for bytes in [&b""[..], b"f", b"fo", b"foo", b"foobar", &[0xfb, 0xff, 0xfe]] {
            let encoded = super::base64(bytes);
            assert_eq!(super::base64_decode(&encoded).as_deref(), Some(bytes));
            let url_safe = encoded.replace('+', "-").replace('/', "_");
            assert_eq!(
                super::base64_decode(url_safe.trim_end_matches('=')).as_deref(),
                Some(bytes)
            );
        }
        assert_eq!(super::base64_decode("+/+-"), Some(vec![0xfb, 0xff, 0xbe]));
        assert_eq!(super::base64_decode("Zg.="), None);
        assert_eq!(super::base64_decode("Zm9vY"), None);
        assert_eq!(super::hex(&[0, 0xab, 0x10]), "00ab10");
        assert_eq!(
            super::timestamp(std::time::Duration::ZERO),
            "2026-01-01T00:00:00.000000000Z"
        );
        assert_eq!(
            super::timestamp(std::time::Duration::from_secs(86_400 * 59 + 3_661)),
            "2026-03-01T01:01:01.000000000Z"
        );
    }
}

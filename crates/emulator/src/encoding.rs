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
    rfc3339(Duration::from_secs(EPOCH_UNIX_SECONDS) + now)
}

/// RFC 3339 in UTC with nanoseconds, of a wall-clock time given since the Unix epoch.
pub fn rfc3339(unix: Duration) -> String {
    let now = unix;
    let seconds = unix.as_secs();
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

/// Days since 1970-01-01 of a civil date (Howard Hinnant's algorithm).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let year = if month <= 2 { year - 1 } else { year };
    let era = year.div_euclid(400);
    let yoe = year - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// An RFC 3339 timestamp (`2026-01-01T00:00:00Z`, fractions and `+hh:mm` offsets accepted) as
/// time since the Unix epoch; `None` when it is not one or lies before 1970.
pub fn parse_rfc3339(text: &str) -> Option<Duration> {
    let b = text.as_bytes();
    let num = |from: usize, len: usize| -> Option<i64> {
        let part = text.get(from..from + len)?;
        part.bytes()
            .all(|c| c.is_ascii_digit())
            .then(|| part.parse().ok())?
    };
    if b.len() < 20
        || b[4] != b'-'
        || b[7] != b'-'
        || !matches!(b[10], b'T' | b't')
        || b[13] != b':'
        || b[16] != b':'
    {
        return None;
    }
    let (year, month, day) = (num(0, 4)?, num(5, 2)?, num(8, 2)?);
    let (hour, minute, second) = (num(11, 2)?, num(14, 2)?, num(17, 2)?);
    if !(1..=12).contains(&month) || !(1..=31).contains(&day) || hour > 23 || minute > 59 || second > 60 {
        return None;
    }
    let mut rest = &text[19..];
    let mut nanos = 0u32;
    if let Some(fraction) = rest.strip_prefix('.') {
        let digits = fraction.bytes().take_while(u8::is_ascii_digit).count();
        if digits == 0 {
            return None;
        }
        let padded: String = fraction[..digits]
            .chars()
            .chain(std::iter::repeat('0'))
            .take(9)
            .collect();
        nanos = padded.parse().ok()?;
        rest = &fraction[digits..];
    }
    let offset = match rest {
        "Z" | "z" => 0,
        _ if rest.len() == 6 && rest.as_bytes()[3] == b':' => {
            let sign = match rest.as_bytes()[0] {
                b'+' => 1,
                b'-' => -1,
                _ => return None,
            };
            let (h, m) = (rest[1..3].parse::<i64>().ok()?, rest[4..6].parse::<i64>().ok()?);
            sign * (h * 3600 + m * 60)
        }
        _ => return None,
    };
    let seconds = days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second - offset;
    Some(Duration::new(u64::try_from(seconds).ok()?, nanos))
}

#[cfg(test)]
mod tests {
    #[test]
    fn rfc3339_round_trips() {
        use std::time::Duration;
        let t = Duration::new(1_767_225_600 + 86_400 * 59 + 3_723, 5_000);
        let text = super::rfc3339(t);
        assert_eq!(text, "2026-03-01T01:02:03.000005000Z");
        assert_eq!(super::parse_rfc3339(&text), Some(t));
        assert_eq!(
            super::parse_rfc3339("2026-01-01T01:00:00+01:00"),
            Some(Duration::from_secs(1_767_225_600))
        );
        assert_eq!(super::parse_rfc3339("2026-01-01"), None);
    }

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

//! A stable 128-bit content digest (two FNV-1a lanes). Used to recognise "the same plan with the
//! same variables" across processes; not a security boundary, so no cryptographic hash is needed.

pub fn digest_hex(bytes: &[u8]) -> String {
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    let mut a: u64 = 0xcbf2_9ce4_8422_2325;
    let mut b: u64 = 0x6c62_272e_07bb_0142;
    for &byte in bytes {
        a = (a ^ u64::from(byte)).wrapping_mul(PRIME);
        b = (b ^ u64::from(byte.rotate_left(3)))
            .wrapping_mul(PRIME)
            .rotate_left(5);
    }
    format!("{a:016x}{b:016x}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn digest_is_stable_and_sensitive() {
        assert_eq!(super::digest_hex(b"plan"), super::digest_hex(b"plan"));
        assert_ne!(super::digest_hex(b"plan"), super::digest_hex(b"plam"));
        assert_eq!(super::digest_hex(b"").len(), 32);
    }
}

//! RSA public keys as service-account keys publish them: a PEM `PUBLIC KEY` block
//! (SubjectPublicKeyInfo, X.509) unwrapped to the PKCS#1 `RSAPublicKey` DER that `ring` verifies
//! signatures with. A few lines of DER reading (tag, length) instead of an ASN.1 crate.

use crate::encoding;

/// The DER of the `rsaEncryption` object identifier, 1.2.840.113549.1.1.1.
const RSA_ENCRYPTION_OID: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x01, 0x01];

/// The PKCS#1 `RSAPublicKey` DER inside a PEM `-----BEGIN PUBLIC KEY-----` block, or why not.
pub fn rsa_public_key_der(pem: &str) -> Result<Vec<u8>, String> {
    let spki = pem_block(pem, "PUBLIC KEY")?;
    // SubjectPublicKeyInfo ::= SEQUENCE { algorithm AlgorithmIdentifier, subjectPublicKey BIT STRING }
    let (info, rest) = read(&spki, 0x30)?;
    if !rest.is_empty() {
        return Err("trailing bytes after the SubjectPublicKeyInfo".into());
    }
    let (algorithm, info) = read(info, 0x30)?;
    let (oid, _parameters) = read(algorithm, 0x06)?;
    if oid != RSA_ENCRYPTION_OID {
        return Err("not an RSA key (the algorithm is not rsaEncryption)".into());
    }
    let (bits, _) = read(info, 0x03)?;
    match bits.split_first() {
        Some((0, key)) => Ok(key.to_vec()),
        _ => Err("the public key BIT STRING has unused bits".into()),
    }
}

/// The bytes of the first PEM block labelled `label`.
fn pem_block(pem: &str, label: &str) -> Result<Vec<u8>, String> {
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let body = pem
        .split_once(&begin)
        .and_then(|(_, rest)| rest.split_once(&end))
        .map(|(body, _)| body)
        .ok_or_else(|| format!("no {begin} block"))?;
    let text: String = body.split_whitespace().collect();
    encoding::base64_decode(&text).ok_or_else(|| "the PEM block is not base64".into())
}

/// One DER element with the expected tag: its contents, and the bytes after it.
fn read(der: &[u8], tag: u8) -> Result<(&[u8], &[u8]), String> {
    let (&found, rest) = der.split_first().ok_or("DER ended early")?;
    if found != tag {
        return Err(format!("DER tag {found:#04x} where {tag:#04x} was expected"));
    }
    let (&first, mut rest) = rest.split_first().ok_or("DER ended early")?;
    let length = if first < 0x80 {
        usize::from(first)
    } else {
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 || rest.len() < count {
            return Err("bad DER length".into());
        }
        let (bytes, after) = rest.split_at(count);
        rest = after;
        bytes.iter().fold(0usize, |n, b| n << 8 | usize::from(*b))
    };
    if rest.len() < length {
        return Err("DER ended early".into());
    }
    Ok(rest.split_at(length))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_test_key_unwraps_to_a_pkcs1_sequence_and_junk_is_refused() {
        let der = super::rsa_public_key_der(crate::test_key::TEST_SERVICE_ACCOUNT_PUBLIC_KEY_PEM).unwrap();
        // RSAPublicKey ::= SEQUENCE { modulus INTEGER, publicExponent INTEGER }, 2048-bit modulus.
        let (key, rest) = super::read(&der, 0x30).unwrap();
        assert!(rest.is_empty());
        let (modulus, key) = super::read(key, 0x02).unwrap();
        assert_eq!(modulus.len(), 257);
        assert_eq!(super::read(key, 0x02).unwrap().0, [1, 0, 1]);
        assert!(
            super::rsa_public_key_der("-----BEGIN PUBLIC KEY-----\nMAA=\n-----END PUBLIC KEY-----").is_err()
        );
        assert!(super::rsa_public_key_der("not a key").is_err());
    }
}

//! What the untrusted-certificate message says is true: with `SSL_CERT_FILE` naming the CA (read
//! by rustls-native-certs when the client is built), the same loopback TLS server is trusted.
//! Alone in its test binary because it sets a process-wide environment variable.

mod support;

#[tokio::test]
async fn ssl_cert_file_naming_the_ca_makes_its_certificates_trusted() {
    let ca = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/testdata/untrusted-ca.pem");
    std::env::set_var("SSL_CERT_FILE", ca);
    let (addr, _) = support::loopback::untrusted_tls().await;
    let (_, answer) = support::get_over_tls(addr).await;
    assert!(answer.is_ok(), "{answer:?}");
}

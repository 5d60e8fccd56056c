//! TLS for the tests: a certificate made here (rcgen), the server's configuration, and a
//! rustls client that trusts it, driven in memory against a [`Session`].

use std::io::Read;
use std::sync::Arc;

use ringws::tls::{Session, TlsConfig};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore};

/// A self-signed certificate for `localhost` and the server's configuration with it.
pub fn certified() -> (TlsConfig, CertificateDer<'static>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert: CertificateDer<'static> = made.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    (TlsConfig::new(vec![cert.clone()], key).unwrap(), cert)
}

/// A self-signed certificate for `names` (DNS names or IP addresses) and its key.
pub fn cert_for(names: &[&str]) -> (CertificateDer<'static>, PrivateKeyDer<'static>) {
    let names = names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
    let made = rcgen::generate_simple_self_signed(names).unwrap();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    (made.cert.der().clone(), key)
}

/// A self-signed certificate for `localhost` as PEM files' contents (certificate, key), and
/// the certificate.
pub fn pem_pair() -> (String, String, CertificateDer<'static>) {
    pem_pair_for("localhost")
}

/// The same for `name`.
pub fn pem_pair_for(name: &str) -> (String, String, CertificateDer<'static>) {
    let made = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
    (
        made.cert.pem(),
        made.signing_key.serialize_pem(),
        made.cert.der().clone(),
    )
}

/// A client configuration trusting `cert`, offering `versions` and ALPN `http/1.1`; it keeps
/// tickets and sessions for resumption only with `resume`.
pub fn client_config(
    cert: &CertificateDer<'static>,
    versions: &[&'static rustls::SupportedProtocolVersion],
    resume: bool,
) -> Arc<ClientConfig> {
    client_config_trusting(std::slice::from_ref(cert), versions, resume)
}

/// The same, trusting every one of `certs`.
pub fn client_config_trusting(
    certs: &[CertificateDer<'static>],
    versions: &[&'static rustls::SupportedProtocolVersion],
    resume: bool,
) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots.add(cert.clone()).unwrap();
    }
    #[allow(deprecated)]
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(versions)
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    client.alpn_protocols = vec![b"http/1.1".to_vec()];
    if !resume {
        client.resumption = rustls::client::Resumption::disabled();
    }
    Arc::new(client)
}

/// A new client connection for `localhost`.
pub fn client(config: &Arc<ClientConfig>) -> ClientConnection {
    client_for(config, "localhost")
}

/// A new client connection for `name` (a DNS name, sent in SNI, or an IP address: no SNI).
pub fn client_for(config: &Arc<ClientConfig>, name: &str) -> ClientConnection {
    let name = ServerName::try_from(name.to_owned()).unwrap();
    ClientConnection::new(config.clone(), name).unwrap()
}

/// What the client has to send.
pub fn from_client(c: &mut ClientConnection) -> Vec<u8> {
    let mut bytes = Vec::new();
    while c.wants_write() {
        c.write_tls(&mut bytes).unwrap();
    }
    bytes
}

/// Hands the server's records to the client: the plaintext the client read.
pub fn to_client(c: &mut ClientConnection, mut records: &[u8]) -> Vec<u8> {
    let mut plain = Vec::new();
    while !records.is_empty() {
        c.read_tls(&mut records).unwrap();
        c.process_new_packets().unwrap();
        let _ = c.reader().read_to_end(&mut plain);
    }
    plain
}

/// Runs the handshake between `c` and `s`, the server fed `chunk` bytes at a time.
pub fn handshake_with(s: &mut Session, c: &mut ClientConnection, chunk: usize) {
    for _ in 0..20 {
        let mut input = from_client(c);
        let mut out = Vec::new();
        for piece in input.chunks_mut(chunk.max(1)) {
            s.receive(piece, &mut out, &mut |_| {}).unwrap();
        }
        to_client(c, &out);
        if !s.is_handshaking() && !c.is_handshaking() {
            return;
        }
    }
    panic!("no handshake: {s:?}");
}

/// A new client, handshaken with `s` in memory.
pub fn handshake(s: &mut Session, config: &Arc<ClientConfig>) -> ClientConnection {
    let mut c = client(config);
    handshake_with(s, &mut c, usize::MAX);
    c
}

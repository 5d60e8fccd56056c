//! The server's certificate and key, and the rustls configuration every session starts from.
//!
//! - Protocols: TLS 1.3 and TLS 1.2 (browsers and load balancers still offer 1.2), no early
//!   data (0-RTT requests can be replayed).
//! - ALPN: `http/1.1` (a WebSocket upgrade is HTTP/1.1; a client that offers only `h2` is
//!   refused with an alert rather than served a protocol it did not ask for).
//! - Resumption: TLS 1.3 tickets (stateless: the server keeps nothing per client) and, for
//!   TLS 1.2, a session cache of [`SESSION_CACHE_ENTRIES`] (about 100 bytes each).
//! - Crypto: rustls' `ring` provider (chosen by `benches/providers.sh`: see [`TlsConfig::new`]).
//! - Certificates: one default, and optionally more by server name (SNI, exact names): a
//!   client that names one of them gets its certificate, any other client (another name, an
//!   IP address, no SNI) the default one. Each named certificate must be valid for its name
//!   (checked when loaded: a typo is an error at start, not a browser warning later).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert, ServerSessionMemoryCache};
use rustls::sign::CertifiedKey;

/// TLS 1.2 sessions remembered for resumption (TLS 1.3 uses tickets and needs none).
pub const SESSION_CACHE_ENTRIES: usize = 4096;

/// Why a certificate or key cannot be used.
#[derive(Debug)]
pub enum TlsConfigError {
    /// The file cannot be read.
    Read(PathBuf, std::io::Error),
    /// The file holds no PEM certificate (`-----BEGIN CERTIFICATE-----`).
    NoCertificate(PathBuf),
    /// The file holds no PEM private key (PKCS#8, PKCS#1 or SEC1).
    NoKey(PathBuf, String),
    /// rustls refuses the pair (the key does not match the certificate, an unsupported key).
    Rejected(String),
    /// The certificate for a server name (SNI) cannot be used: the name is not a DNS name, is
    /// given twice, the certificate is not valid for it, or its files fail as above.
    Name(String, Box<TlsConfigError>),
}

impl std::fmt::Display for TlsConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsConfigError::Read(p, e) => write!(f, "cannot read {}: {e}", p.display()),
            TlsConfigError::NoCertificate(p) => {
                write!(f, "{}: no PEM certificate in it", p.display())
            }
            TlsConfigError::NoKey(p, e) => {
                write!(f, "{}: no PEM private key in it ({e})", p.display())
            }
            TlsConfigError::Rejected(e) => write!(f, "the certificate and key cannot be used: {e}"),
            TlsConfigError::Name(name, e) => write!(f, "server name {name}: {e}"),
        }
    }
}

impl std::error::Error for TlsConfigError {}

/// `provider` with the key exchanges and suites in the order this server prefers: X25519 first
/// (rustls' `ring` provider lists P-384 first, which ring computes in generic code: measured,
/// it made full handshakes cost ~1.1 ms of server CPU), then P-256, P-384; AES-128-GCM first.
fn preferred(mut provider: rustls::crypto::CryptoProvider) -> rustls::crypto::CryptoProvider {
    use rustls::crypto::ring::kx_group;
    provider.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
    provider.cipher_suites.sort_by_key(|s| match s.suite() {
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256 => 0,
        rustls::CipherSuite::TLS13_CHACHA20_POLY1305_SHA256 => 1,
        rustls::CipherSuite::TLS13_AES_256_GCM_SHA384 => 2,
        _ => 3, // TLS 1.2's, in the provider's order
    });
    provider
}

/// A certificate for one server name, from PEM files (`--tls-sni NAME=CERT,KEY`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NamedFiles {
    /// The DNS name a client sends in SNI (exact, case-insensitive; no wildcard).
    pub name: String,
    /// The chain, the server's certificate first (PEM).
    pub cert: PathBuf,
    /// Its private key (PEM).
    pub key: PathBuf,
}

/// A chain and its key as DER, for a server name ([`TlsConfig::with_names`]).
pub type NamedDer = (String, Vec<CertificateDer<'static>>, PrivateKeyDer<'static>);

/// The files a configuration was read from, for a reload.
#[derive(Debug, Clone)]
struct Files {
    cert: PathBuf,
    key: PathBuf,
    names: Vec<NamedFiles>,
}

/// What a [`TlsConfig::reload`] read.
#[derive(Debug, Clone)]
pub struct Reloaded {
    /// The default certificate's file.
    pub cert: PathBuf,
    /// Its key's file.
    pub key: PathBuf,
    /// How many certificates by server name were read with it.
    pub names: usize,
}

/// Picks the certificate of a handshake: the one for the name the client sent, else the
/// default (never none: a client without SNI, or naming another host, still gets an answer
/// it can judge).
#[derive(Debug)]
struct ByName {
    default: Arc<CertifiedKey>,
    /// Lowercase names.
    names: HashMap<String, Arc<CertifiedKey>>,
}

impl ResolvesServerCert for ByName {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let named = hello.server_name().and_then(|name| {
            if name.bytes().any(|b| b.is_ascii_uppercase()) {
                self.names.get(&name.to_ascii_lowercase())
            } else {
                self.names.get(name)
            }
        });
        Some(named.unwrap_or(&self.default).clone())
    }
}

/// Reads a PEM chain and key.
fn read_pem(
    cert: &Path,
    key: &Path,
) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>), TlsConfigError> {
    let read = |p: &Path| std::fs::read(p).map_err(|e| TlsConfigError::Read(p.into(), e));
    let (cert_pem, key_pem) = (read(cert)?, read(key)?);
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .filter_map(Result::ok)
        .collect();
    if chain.is_empty() {
        return Err(TlsConfigError::NoCertificate(cert.into()));
    }
    let key_der = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| TlsConfigError::NoKey(key.into(), e.to_string()))?;
    Ok((chain, key_der))
}

/// A chain and its key as rustls signs with them, checked to belong together (where the key
/// type says its public half; as `with_single_cert` does).
fn certified(
    provider: &rustls::crypto::CryptoProvider,
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, TlsConfigError> {
    CertifiedKey::from_der(chain, key, provider)
        .map_err(|e| TlsConfigError::Rejected(e.to_string()))
}

/// A certificate chain and its key, made into the configuration sessions start from. Clones
/// share it: a [`TlsConfig::reload`] is seen by every clone (the workers' too), for the
/// sessions that start afterwards; sessions under way keep the configuration they started with.
#[derive(Debug, Clone)]
pub struct TlsConfig {
    server: Arc<RwLock<Arc<rustls::ServerConfig>>>,
    /// Where the certificates and keys came from (for a reload), if from files.
    files: Option<Files>,
}

impl TlsConfig {
    /// From PEM files: `cert` holds the chain (the server's certificate first, then the
    /// intermediates), `key` its private key.
    ///
    /// # Errors
    /// A file that cannot be read, holds no certificate or key, or a pair rustls refuses.
    pub fn from_pem_files(cert: &Path, key: &Path) -> Result<Self, TlsConfigError> {
        Self::from_pem_files_with_names(cert, key, &[])
    }

    /// The same with certificates by server name (SNI); `cert` and `key` are the default.
    ///
    /// # Errors
    /// As [`TlsConfig::from_pem_files`] for any of the files, or a name as
    /// [`TlsConfig::with_names`] refuses it.
    pub fn from_pem_files_with_names(
        cert: &Path,
        key: &Path,
        names: &[NamedFiles],
    ) -> Result<Self, TlsConfigError> {
        let (chain, key_der) = read_pem(cert, key)?;
        let mut named = Vec::with_capacity(names.len());
        for n in names {
            let (chain, key) = read_pem(&n.cert, &n.key)
                .map_err(|e| TlsConfigError::Name(n.name.clone(), Box::new(e)))?;
            named.push((n.name.clone(), chain, key));
        }
        let mut config = Self::with_names(chain, key_der, named)?;
        config.files = Some(Files {
            cert: cert.into(),
            key: key.into(),
            names: names.to_vec(),
        });
        Ok(config)
    }

    /// Reads the certificate and key files again (the default and every named one) and, if
    /// they can all be used, makes them the configuration of the sessions that start from now
    /// on (TLS 1.2 sessions and TLS 1.3 tickets issued before still resume).
    ///
    /// # Errors
    /// No files to read (a configuration made from DER), or one of them cannot be used: the
    /// configuration in use stays, whole.
    pub fn reload(&self) -> Result<Reloaded, TlsConfigError> {
        let Some(files) = &self.files else {
            return Err(TlsConfigError::Rejected(
                "not made from files: nothing to reload".into(),
            ));
        };
        let fresh = Self::from_pem_files_with_names(&files.cert, &files.key, &files.names)?;
        let mut new = (*fresh.rustls()).clone();
        let mut current = self.server.write().unwrap_or_else(|p| p.into_inner());
        new.session_storage = current.session_storage.clone();
        new.ticketer = current.ticketer.clone();
        *current = Arc::new(new);
        Ok(Reloaded {
            cert: files.cert.clone(),
            key: files.key.clone(),
            names: files.names.len(),
        })
    }

    /// From DER: the chain (the server's certificate first) and its key.
    ///
    /// # Errors
    /// A pair rustls refuses.
    pub fn new(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    ) -> Result<Self, TlsConfigError> {
        Self::with_names(chain, key, Vec::new())
    }

    /// From DER: the default chain and key, and a chain and key for each of `names` (SNI).
    ///
    /// # Errors
    /// A pair rustls refuses; a name that is not a DNS name, is given twice, or that its
    /// certificate is not valid for ([`TlsConfigError::Name`]).
    pub fn with_names(
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
        names: Vec<NamedDer>,
    ) -> Result<Self, TlsConfigError> {
        let rejected = |e: rustls::Error| TlsConfigError::Rejected(e.to_string());
        // `ring`, chosen by `benches/providers.sh` (benches/results/providers-latest.md): its
        // AES-128-GCM seals records in 0.55-0.85 of aws-lc-rs' time with keys 12 % smaller
        // (what every connection pays for every message, and holds while idle; the TLS 1.3
        // records use ring directly, `record.rs`); aws-lc-rs' handshakes cost 0.8 of ring's,
        // paid once per connection, and it would add AWS-LC's C build to both targets. rustls
        // marks `ring` deprecated for lacking post-quantum key exchange (X25519MLKEM768):
        // browsers that offer it also offer X25519.
        #[allow(deprecated)]
        let provider = Arc::new(preferred(rustls::crypto::ring::default_provider()));
        let default = Arc::new(certified(&provider, chain, key)?);
        let mut by_name = HashMap::with_capacity(names.len());
        for (name, chain, key) in names {
            let named = |e| TlsConfigError::Name(name.clone(), Box::new(e));
            let certified = certified(&provider, chain, key).map_err(named)?;
            // rustls' own resolver checks the name is a DNS name the certificate is valid for.
            rustls::server::ResolvesServerCertUsingSni::new()
                .add(&name, certified.clone())
                .map_err(|e| named(rejected(e)))?;
            if by_name
                .insert(name.to_ascii_lowercase(), Arc::new(certified))
                .is_some()
            {
                return Err(named(TlsConfigError::Rejected("given twice".into())));
            }
        }
        let mut server = rustls::ServerConfig::builder_with_provider(provider)
            .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
            .map_err(rejected)?
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(ByName {
                default,
                names: by_name,
            }));
        server.alpn_protocols = vec![b"http/1.1".to_vec()];
        server.max_early_data_size = 0;
        server.session_storage = ServerSessionMemoryCache::new(SESSION_CACHE_ENTRIES);
        server.ticketer = rustls::crypto::ring::Ticketer::new().map_err(rejected)?;
        // A TLS 1.3 session keeps only its keys once the handshake is done (`record.rs`):
        // rustls hands them out, and its key log the secrets a key update needs.
        server.enable_secret_extraction = true;
        server.key_log = Arc::new(super::secrets::Catch);
        Ok(TlsConfig {
            server: Arc::new(RwLock::new(Arc::new(server))),
            files: None,
        })
    }

    /// The rustls configuration a session starting now uses.
    pub fn rustls(&self) -> Arc<rustls::ServerConfig> {
        self.server
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

//! Where the load goes: a `ws://` URL or a bare address, parsed without DNS, and the
//! [`Setup`] every run shares (connections, timeouts, the processes to watch).
//!
//! Only literal IP addresses (and `localhost`, read as 127.0.0.1) are accepted: the tool is meant
//! for servers on this machine, and a name lookup would hide which address is really loaded.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;

use crate::server::Probe;

/// The server to load: its socket address and what the upgrade request names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// Where to connect.
    pub addr: SocketAddr,
    /// The `Host` header (the URL's authority as written).
    pub host: String,
    /// The request target (path and query), at least `/`.
    pub path: String,
    /// Offer permessage-deflate in the upgrade (`--compress`).
    pub compress: bool,
    /// TLS (`wss://` or `--tls`): the client configuration, trusting `--tls-ca`.
    pub tls: Option<Tls>,
    /// The server echoes raw bytes after the upgrade (`--raw-echo`, the floor).
    pub raw_echo: bool,
}

/// A TLS client configuration (compared by identity: one per run).
#[derive(Clone)]
pub struct Tls(pub Arc<rustls::ClientConfig>);

impl std::fmt::Debug for Tls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Tls")
    }
}

impl PartialEq for Tls {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

impl Eq for Tls {}

impl Tls {
    /// A client configuration trusting the PEM certificates in `ca` (TLS 1.3 and 1.2, ALPN
    /// `http/1.1`); with `resume`, connections resume the sessions of earlier ones (tickets,
    /// kept in memory), else every connection makes a full handshake.
    pub fn trusting(ca: &std::path::Path, resume: bool) -> Result<Self, String> {
        use rustls::pki_types::CertificateDer;
        use rustls::pki_types::pem::PemObject;
        let pem = std::fs::read(ca).map_err(|e| format!("--tls-ca {}: {e}", ca.display()))?;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_slice_iter(&pem) {
            let cert = cert.map_err(|e| format!("--tls-ca {}: {e}", ca.display()))?;
            roots
                .add(cert)
                .map_err(|e| format!("--tls-ca {}: {e}", ca.display()))?;
        }
        if roots.is_empty() {
            return Err(format!(
                "--tls-ca {}: no PEM certificate in it",
                ca.display()
            ));
        }
        // ring, as the server (see its src/tls/config.rs), offering what browsers offer first:
        // X25519 (the provider lists P-384 first, which ring computes in generic code), and
        // AES-128-GCM (the provider lists AES-256-GCM first; servers that follow the client's
        // order, as rustls and OpenSSL do by default, would take it).
        #[allow(deprecated)]
        let mut provider = rustls::crypto::ring::default_provider();
        {
            use rustls::crypto::ring::kx_group;
            provider.kx_groups = vec![kx_group::X25519, kx_group::SECP256R1, kx_group::SECP384R1];
            let first = rustls::CipherSuite::TLS13_AES_128_GCM_SHA256;
            provider.cipher_suites.sort_by_key(|s| s.suite() != first);
        }
        let provider = Arc::new(provider);
        let mut config = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| e.to_string())?
            .with_root_certificates(roots)
            .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        config.resumption = if resume {
            rustls::client::Resumption::store(Arc::new(Sessions::default()))
        } else {
            rustls::client::Resumption::disabled()
        };
        Ok(Tls(Arc::new(config)))
    }

    /// A client session for `host` (the URL's host: an IP address or `localhost`).
    pub fn session(&self, host: &str) -> std::io::Result<rustls::ClientConnection> {
        let name = host.rsplit_once(':').map_or(host, |(h, _)| h);
        let name = name.trim_start_matches('[').trim_end_matches(']');
        let name = rustls::pki_types::ServerName::try_from(name.to_owned())
            .map_err(|e| std::io::Error::other(e.to_string()))?;
        rustls::ClientConnection::new(self.0.clone(), name).map_err(std::io::Error::other)
    }
}

/// The sessions `--tls-resume` resumes (one server per run): every TLS 1.3 ticket the server
/// gives, up to [`Sessions::MAX_TICKETS`] (rustls' own cache keeps 8 per server, fewer than
/// the connections a run sets up at once: most would make a full handshake), the newest
/// first; the last TLS 1.2 session.
#[derive(Debug, Default)]
struct Sessions(std::sync::Mutex<Kept>);

#[derive(Debug, Default)]
struct Kept {
    kx: Option<rustls::NamedGroup>,
    tls12: Option<rustls::client::Tls12ClientSessionValue>,
    tls13: std::collections::VecDeque<rustls::client::Tls13ClientSessionValue>,
}

impl Sessions {
    const MAX_TICKETS: usize = 4096;

    fn kept(&self) -> std::sync::MutexGuard<'_, Kept> {
        self.0.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl rustls::client::ClientSessionStore for Sessions {
    fn set_kx_hint(&self, _: rustls::pki_types::ServerName<'static>, group: rustls::NamedGroup) {
        self.kept().kx = Some(group);
    }

    fn kx_hint(&self, _: &rustls::pki_types::ServerName<'_>) -> Option<rustls::NamedGroup> {
        self.kept().kx
    }

    fn set_tls12_session(
        &self,
        _: rustls::pki_types::ServerName<'static>,
        value: rustls::client::Tls12ClientSessionValue,
    ) {
        self.kept().tls12 = Some(value);
    }

    fn tls12_session(
        &self,
        _: &rustls::pki_types::ServerName<'_>,
    ) -> Option<rustls::client::Tls12ClientSessionValue> {
        self.kept().tls12.clone()
    }

    fn remove_tls12_session(&self, _: &rustls::pki_types::ServerName<'static>) {
        self.kept().tls12 = None;
    }

    fn insert_tls13_ticket(
        &self,
        _: rustls::pki_types::ServerName<'static>,
        value: rustls::client::Tls13ClientSessionValue,
    ) {
        let mut kept = self.kept();
        if kept.tls13.len() >= Self::MAX_TICKETS {
            kept.tls13.pop_front();
        }
        kept.tls13.push_back(value);
    }

    fn take_tls13_ticket(
        &self,
        _: &rustls::pki_types::ServerName<'static>,
    ) -> Option<rustls::client::Tls13ClientSessionValue> {
        self.kept().tls13.pop_back()
    }
}

impl Target {
    /// Parses `ws://HOST[:PORT][/PATH]` (port 80 by default) or `wss://...` (443; TLS, which
    /// needs `--tls-ca`).
    pub fn from_url(url: &str) -> Result<Self, String> {
        let lower = url.to_ascii_lowercase();
        let (rest, default_port) = if lower.starts_with("ws://") {
            (&url[5..], 80)
        } else if lower.starts_with("wss://") {
            (&url[6..], 443)
        } else {
            return Err(format!("{url}: the URL must start with ws:// or wss://"));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        let addr = parse_authority(authority, default_port).map_err(|e| format!("{url}: {e}"))?;
        Ok(Self {
            addr,
            host: authority.to_string(),
            path,
            compress: false,
            tls: None,
            raw_echo: false,
        })
    }

    /// A bare `HOST:PORT`, requested as `/`.
    pub fn from_addr(addr: &str) -> Result<Self, String> {
        let sa = parse_authority(addr, 0).map_err(|e| format!("{addr}: {e}"))?;
        if sa.port() == 0 {
            return Err(format!("{addr}: a port is required"));
        }
        Ok(Self {
            addr: sa,
            host: addr.to_string(),
            path: "/".to_string(),
            compress: false,
            tls: None,
            raw_echo: false,
        })
    }
}

/// `HOST[:PORT]` with HOST an IPv4 literal, `[IPv6]` or `localhost`.
fn parse_authority(authority: &str, default_port: u16) -> Result<SocketAddr, String> {
    if authority.is_empty() {
        return Err("empty host".to_string());
    }
    if authority.contains('@') {
        return Err("user information is not supported".to_string());
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let (h, after) = v6.split_once(']').ok_or("unclosed [")?;
        let port = match after {
            "" => None,
            p => Some(p.strip_prefix(':').ok_or("junk after ]")?),
        };
        (h, port)
    } else {
        match authority.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p.parse::<u16>().map_err(|_| format!("bad port {p:?}"))?,
        None => default_port,
    };
    let ip = if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else {
        host.parse::<IpAddr>()
            .map_err(|_| format!("{host:?} is not an IP address (no DNS here)"))?
    };
    Ok(SocketAddr::new(ip, port))
}

/// What every run needs.
#[derive(Debug, Clone)]
pub struct Setup {
    /// The server.
    pub target: Target,
    /// Connections to open.
    pub connections: usize,
    /// Most connections being set up at once.
    pub concurrency: usize,
    /// How long the setup may take in all.
    pub connect_timeout: Duration,
    /// Source addresses to spread connections over (empty: the kernel picks).
    pub sources: Vec<std::net::IpAddr>,
    /// The server process, to sample.
    pub server: Option<Probe>,
    /// Other processes whose CPU time is sampled over the window, by name.
    pub also: Vec<(String, Probe)>,
    /// Where the publishers connect, when not to `target` (broadcast across nodes).
    pub publish_target: Option<Target>,
    /// Broadcast: publish through the chat's backend API at this address, with this key.
    pub publish_api: Option<(std::net::SocketAddr, String)>,
    /// Print a progress line per second on stderr.
    pub progress: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls() {
        let t = Target::from_url("ws://127.0.0.1:65001/").unwrap();
        assert_eq!(t.addr, "127.0.0.1:65001".parse().unwrap());
        assert_eq!((t.host.as_str(), t.path.as_str()), ("127.0.0.1:65001", "/"));

        let t = Target::from_url("WS://localhost:9000/chat?room=1").unwrap();
        assert_eq!(t.addr, "127.0.0.1:9000".parse().unwrap());
        assert_eq!(t.path, "/chat?room=1");

        let t = Target::from_url("ws://127.0.0.2").unwrap();
        assert_eq!(t.addr, "127.0.0.2:80".parse().unwrap());
        assert_eq!(t.path, "/");

        let t = Target::from_url("ws://127.0.0.1:8080?x").unwrap();
        assert_eq!(t.path, "/?x");

        let t = Target::from_url("ws://[::1]:65002/x").unwrap();
        assert_eq!(t.addr, "[::1]:65002".parse().unwrap());
        assert_eq!(t.host, "[::1]:65002");

        let t = Target::from_url("wss://localhost/chat").unwrap();
        assert_eq!(t.addr.port(), 443, "wss:// defaults to 443");
        assert_eq!(t.path, "/chat");
    }

    #[test]
    fn bad_urls() {
        for bad in [
            "http://127.0.0.1:1/",
            "ws://",
            "ws://example.com:80/",
            "ws://127.0.0.1:99999/",
            "ws://[::1/",
            "ws://u@127.0.0.1/",
        ] {
            assert!(Target::from_url(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn addrs() {
        let t = Target::from_addr("127.0.0.1:65001").unwrap();
        assert_eq!(t.addr.port(), 65001);
        assert_eq!(t.path, "/");
        assert!(Target::from_addr("127.0.0.1").is_err());
    }
}

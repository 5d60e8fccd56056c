//! Where the load goes: a `ws://` URL or a bare address, parsed without DNS, and the
//! [`Setup`] every run shares (connections, timeouts, the processes to watch).
//!
//! Only literal IP addresses (and `localhost`, read as 127.0.0.1) are accepted: the tool is meant
//! for servers on this machine, and a name lookup would hide which address is really loaded.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
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
}

impl Target {
    /// Parses `ws://HOST[:PORT][/PATH]` (port 80 by default). `wss://` is refused: no TLS here.
    pub fn from_url(url: &str) -> Result<Self, String> {
        let lower = url.to_ascii_lowercase();
        let rest = if lower.starts_with("ws://") {
            &url[5..]
        } else if lower.starts_with("wss://") {
            return Err(format!(
                "{url}: wss:// is not supported (no TLS in the load tool)"
            ));
        } else {
            return Err(format!("{url}: the URL must start with ws://"));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_string()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_string()),
        };
        let addr = parse_authority(authority, 80).map_err(|e| format!("{url}: {e}"))?;
        Ok(Self {
            addr,
            host: authority.to_string(),
            path,
            compress: false,
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
    }

    #[test]
    fn bad_urls() {
        for bad in [
            "http://127.0.0.1:1/",
            "wss://127.0.0.1:1/",
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

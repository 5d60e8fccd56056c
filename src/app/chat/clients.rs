//! Where connections come from: the client's address (behind trusted proxies, from
//! `X-Forwarded-For`) and a per-address limit on connections open at once.
//!
//! The limit is off by default: many users share one address behind a NAT (an office, a
//! carrier-grade NAT on mobile networks), so only a deployment whose clients have their own
//! addresses should set it. Behind a load balancer every connection comes from the balancer:
//! name it in `trusted_proxies`, and the client is the rightmost address of
//! `X-Forwarded-For` that is not itself a trusted proxy (the leftmost entries are whatever the
//! client chose to send, and are never believed).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;

use ipnet::IpNet;

/// The client's address: `peer` itself, unless `peer` is a trusted proxy and
/// `forwarded_for` (the `X-Forwarded-For` header) names one that is not.
pub fn client_ip(peer: IpAddr, forwarded_for: Option<&str>, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let Some(list) = forwarded_for else {
        return peer;
    };
    for entry in list.rsplit(',') {
        let Ok(ip) = entry.trim().parse::<IpAddr>().map(|ip| ip.to_canonical()) else {
            // Not an address (garbage, or a port we do not parse): stop believing the header.
            return peer;
        };
        if !is_trusted(&ip) {
            return ip;
        }
    }
    peer
}

/// Connections open now, per client address (only while a limit is set).
#[derive(Debug, Default)]
pub struct PerAddress {
    counts: Mutex<HashMap<IpAddr, u32>>,
}

impl PerAddress {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, u32>> {
        self.counts.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Counts one more connection from `ip` if it has fewer than `limit` open: `false` if it
    /// has `limit` already.
    pub fn admit(&self, ip: IpAddr, limit: u32) -> bool {
        let mut counts = self.lock();
        let n = counts.entry(ip).or_default();
        if *n >= limit {
            return false;
        }
        *n += 1;
        true
    }

    /// A connection from `ip` is over.
    pub fn release(&self, ip: IpAddr) {
        let mut counts = self.lock();
        if let Some(n) = counts.get_mut(&ip) {
            *n -= 1;
            if *n == 0 {
                counts.remove(&ip);
            }
        }
    }

    /// Connections open from `ip`.
    pub fn open(&self, ip: IpAddr) -> u32 {
        self.lock().get(&ip).copied().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn forwarded_for_is_believed_from_trusted_proxies_only() {
        let trusted: Vec<IpNet> = vec!["10.0.0.0/8".parse().unwrap(), "::1/128".parse().unwrap()];
        // Not a proxy: its own address, whatever it claims.
        assert_eq!(
            client_ip(ip("203.0.113.9"), Some("1.2.3.4"), &trusted),
            ip("203.0.113.9")
        );
        // A proxy: the rightmost address that is not a proxy.
        assert_eq!(
            client_ip(
                ip("10.0.0.2"),
                Some("6.6.6.6, 198.51.100.7, 10.0.0.1"),
                &trusted
            ),
            ip("198.51.100.7"),
            "the client's own claim (6.6.6.6) on the left is not believed"
        );
        assert_eq!(
            client_ip(ip("::1"), Some("2001:db8::5"), &trusted),
            ip("2001:db8::5")
        );
        assert_eq!(client_ip(ip("10.0.0.2"), None, &trusted), ip("10.0.0.2"));
        assert_eq!(
            client_ip(ip("10.0.0.2"), Some("10.0.0.3"), &trusted),
            ip("10.0.0.2"),
            "only proxies in the list"
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), Some("1.1.1.1, junk"), &trusted),
            ip("10.0.0.2"),
            "garbage: the header is not believed"
        );
        assert_eq!(
            client_ip(ip("10.0.0.2"), Some("1.1.1.1"), &[]),
            ip("10.0.0.2")
        );
    }

    #[test]
    fn an_address_is_admitted_up_to_its_limit_and_again_after_a_release() {
        let per = PerAddress::default();
        let a = ip("192.0.2.1");
        assert!(per.admit(a, 2) && per.admit(a, 2));
        assert!(!per.admit(a, 2), "the third");
        assert!(per.admit(ip("192.0.2.2"), 2), "another address");
        per.release(a);
        assert_eq!(per.open(a), 1);
        assert!(per.admit(a, 2));
        per.release(a);
        per.release(a);
        assert_eq!(per.open(a), 0);
        assert!(per.lock().get(&a).is_none(), "forgotten at zero");
    }
}

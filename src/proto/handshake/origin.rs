//! The `Origin` allow-list of RFC 6455 §10.2.
//!
//! A browser tells the server which page opened the WebSocket in `Origin`, and a page of
//! another site can open one to this server with the user's cookies (cross-site WebSocket
//! hijacking). A server that browsers reach and that trusts cookies must therefore check
//! `Origin` against the sites it serves, and refuse others with 403.
//!
//! **Origin is not authentication** (§10.1): any non-browser client sends whatever `Origin` it
//! likes, or none. The check only stops *browsers* from being used against the user;
//! authenticate the request itself (cookie, token, TLS client certificate) as well.

use super::request::UpgradeRequest;
use super::tokens::trim_ows;
use crate::proto::error::Error;

/// Which `Origin` values a server accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OriginPolicy {
    /// Any `Origin`, or none: for servers that no browser reaches, or whose authentication does
    /// not ride on cookies.
    Any,
    /// Only the listed origins.
    AllowList {
        /// Serialized origins, `scheme://host[:port]`, matched exactly but ignoring ASCII case,
        /// e.g. `https://chat.example.com` or `http://localhost:8080`. Write them the way
        /// browsers send them: no path, no trailing `/`, no default port (`:443` for https,
        /// `:80` for http). Never list `null`: sandboxed frames and `file:` pages send it.
        origins: Vec<String>,
        /// Whether a request without `Origin` is accepted. Browsers always send one, so a
        /// missing `Origin` means a non-browser client (a native app, a server); those are not
        /// protected by this check anyway and must be authenticated.
        allow_missing: bool,
    },
}

impl OriginPolicy {
    /// An allow-list of `origins` that refuses requests without `Origin`.
    pub fn allow_list<I, S>(origins: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        Self::AllowList {
            origins: origins.into_iter().map(Into::into).collect(),
            allow_missing: false,
        }
    }

    /// Whether the request's `Origin` is acceptable.
    ///
    /// With an allow-list, exactly one `Origin` header is expected (RFC 6454 §7.3: a user agent
    /// sends at most one); a repeated one is refused, and so is a value that is not UTF-8.
    ///
    /// # Errors
    ///
    /// [`Error::OriginNotAllowed`] (answered with 403).
    pub fn check(&self, req: &UpgradeRequest<'_>) -> Result<(), Error> {
        let Self::AllowList {
            origins,
            allow_missing,
        } = self
        else {
            return Ok(());
        };
        let mut values = req
            .headers()
            .filter(|(name, _)| name.eq_ignore_ascii_case("origin"));
        let allowed = match (values.next(), values.next()) {
            (None, _) => *allow_missing,
            (Some((_, value)), None) => {
                let value = trim_ows(value);
                origins
                    .iter()
                    .any(|origin| origin.as_bytes().eq_ignore_ascii_case(value))
            }
            (Some(_), Some(_)) => false,
        };
        if allowed {
            Ok(())
        } else {
            Err(Error::OriginNotAllowed)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::config::Limits;
    use crate::proto::handshake::Request;

    fn check(policy: &OriginPolicy, origin_lines: &str) -> Result<(), Error> {
        let head = format!(
            "GET / HTTP/1.1\r\nHost: chat.example.com\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n{origin_lines}\r\n"
        );
        let Ok(Request::Upgrade(req)) = Request::parse(head.as_bytes(), &Limits::default()) else {
            panic!()
        };
        policy.check(&req)
    }

    #[test]
    fn any_accepts_everything() {
        assert_eq!(check(&OriginPolicy::Any, ""), Ok(()));
        assert_eq!(
            check(&OriginPolicy::Any, "Origin: https://evil.example\r\n"),
            Ok(())
        );
    }

    #[test]
    fn allow_list_matches_exactly_ignoring_case() {
        let policy =
            OriginPolicy::allow_list(["https://chat.example.com", "http://localhost:8080"]);
        assert_eq!(
            check(&policy, "Origin: https://chat.example.com\r\n"),
            Ok(())
        );
        assert_eq!(
            check(&policy, "origin: HTTPS://Chat.Example.COM \r\n"),
            Ok(())
        );
        assert_eq!(check(&policy, "Origin: http://localhost:8080\r\n"), Ok(()));
        for refused in [
            "http://chat.example.com",           // other scheme
            "https://chat.example.com:8443",     // other port
            "https://chat.example.com.evil.com", // suffix
            "https://evil-chat.example.com",     // other host
            "https://chat.example.co",           // prefix
            "https://chat.example.com/",         // path
            "http://localhost",                  // missing port
            "null",
            "",
        ] {
            assert_eq!(
                check(&policy, &format!("Origin: {refused}\r\n")),
                Err(Error::OriginNotAllowed),
                "{refused}"
            );
        }
    }

    #[test]
    fn missing_origin_follows_allow_missing() {
        let strict = OriginPolicy::allow_list(["https://chat.example.com"]);
        assert_eq!(check(&strict, ""), Err(Error::OriginNotAllowed));
        let lenient = OriginPolicy::AllowList {
            origins: vec!["https://chat.example.com".into()],
            allow_missing: true,
        };
        assert_eq!(check(&lenient, ""), Ok(()));
        assert_eq!(
            check(&lenient, "Origin: https://evil.example\r\n"),
            Err(Error::OriginNotAllowed)
        );
    }

    #[test]
    fn repeated_or_non_utf8_origin_is_refused() {
        let policy = OriginPolicy::AllowList {
            origins: vec!["https://chat.example.com".into()],
            allow_missing: true,
        };
        let twice = "Origin: https://chat.example.com\r\nOrigin: https://chat.example.com\r\n";
        assert_eq!(check(&policy, twice), Err(Error::OriginNotAllowed));
        let head = b"GET / HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Origin: https://chat.example.com\xff\r\n\r\n";
        let Ok(Request::Upgrade(req)) = Request::parse(head, &Limits::default()) else {
            panic!()
        };
        assert_eq!(req.origin(), None);
        assert_eq!(
            policy.check(&req),
            Err(Error::OriginNotAllowed),
            "not treated as missing"
        );
    }
}

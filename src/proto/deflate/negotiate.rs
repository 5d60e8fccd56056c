//! The permessage-deflate offer and response (RFC 7692 §7.1).
//!
//! A client offers the extension one or more times in `Sec-WebSocket-Extensions`, in order of
//! preference, each with parameters:
//!
//! | parameter | in an offer | in our response |
//! |---|---|---|
//! | `server_no_context_takeover` | no value: "reset your window after each message" | sent when we reset (shared mode always) |
//! | `client_no_context_takeover` | no value: the client is willing to reset its window | sent when we want it to (shared mode always) |
//! | `server_max_window_bits` | 8-15: "keep at most this window" | echoed, same or smaller |
//! | `client_max_window_bits` | no value or 8-15: the client can keep a smaller window | only if offered: the window we want it to keep |
//!
//! §7 requires declining an offer with an unknown parameter, a parameter twice, or an invalid
//! value; a declined offer is skipped and the next one considered, and if none is acceptable
//! the connection simply goes on without compression (never an error: the upgrade succeeds).

use super::DeflateConfig;
use crate::proto::handshake::ExtensionOffer;

/// The extension's registered name.
pub const NAME: &str = "permessage-deflate";

/// How a server uses permessage-deflate; see the module docs of
/// [`deflate`](super) for the memory each costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Mode {
    /// Not negotiated: offers are ignored.
    #[default]
    Off,
    /// No context takeover in either direction (requested of the client, announced for us):
    /// every message stands alone, so one deflater and one inflater per worker serve every
    /// connection, and a published message is compressed once per worker for all subscribers.
    /// No memory per connection.
    Shared,
    /// Context takeover where the client allows it, with bounded windows: better ratios on
    /// repetitive streams for a deflater and an inflater per connection.
    Dedicated,
}

impl Mode {
    /// The names accepted by `--compression`.
    pub const NAMES: &'static str = "off, shared, dedicated";

    /// Parses `off`, `shared` or `dedicated`.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "off" => Some(Self::Off),
            "shared" => Some(Self::Shared),
            "dedicated" => Some(Self::Dedicated),
            _ => None,
        }
    }
}

/// What was agreed for one connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreement {
    /// We reset our window after every message (so a worker-wide deflater can be used).
    pub server_no_context_takeover: bool,
    /// The client resets its window after every message (so a worker-wide inflater can be
    /// used, reset after each message).
    pub client_no_context_takeover: bool,
    /// The window our deflater may use, 8 to 15 bits.
    pub server_max_window_bits: u8,
    /// The window the client compresses with, 8 to 15 bits (our inflater's window).
    pub client_max_window_bits: u8,
    /// Whether the response states `server_max_window_bits` (only when offered).
    say_server_bits: bool,
    /// Whether the response states `client_max_window_bits` (only when offered).
    say_client_bits: bool,
}

impl Agreement {
    /// The `Sec-WebSocket-Extensions` response value.
    pub fn response(&self) -> String {
        let mut s = String::from(NAME);
        if self.server_no_context_takeover {
            s.push_str("; server_no_context_takeover");
        }
        if self.client_no_context_takeover {
            s.push_str("; client_no_context_takeover");
        }
        if self.say_server_bits {
            s.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_max_window_bits
            ));
        }
        if self.say_client_bits {
            s.push_str(&format!(
                "; client_max_window_bits={}",
                self.client_max_window_bits
            ));
        }
        s
    }
}

/// One valid offer's parameters.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Offer {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: offered without a value.
    client_max_window_bits: Option<Option<u8>>,
}

/// A window size: 1*DIGIT in 8..=15, without leading zeros or signs.
fn window_bits(value: &str) -> Option<u8> {
    match value {
        "8" | "9" => value.parse().ok(),
        "10" | "11" | "12" | "13" | "14" | "15" => value.parse().ok(),
        _ => None,
    }
}

/// The parameters of a permessage-deflate offer, or `None` if it must be declined.
fn parse(offer: &ExtensionOffer<'_>) -> Option<Offer> {
    let mut o = Offer::default();
    let mut seen = [false; 4];
    for (name, value) in offer.params() {
        let value = value.as_deref();
        let i = match name.to_ascii_lowercase().as_str() {
            "server_no_context_takeover" if value.is_none() => {
                o.server_no_context_takeover = true;
                0
            }
            "client_no_context_takeover" if value.is_none() => {
                o.client_no_context_takeover = true;
                1
            }
            "server_max_window_bits" => {
                o.server_max_window_bits = Some(window_bits(value?)?);
                2
            }
            "client_max_window_bits" => {
                o.client_max_window_bits = Some(match value {
                    None => None,
                    Some(v) => Some(window_bits(v)?),
                });
                3
            }
            _ => return None, // unknown, or a value where none is allowed
        };
        if seen[i] {
            return None; // the same parameter twice
        }
        seen[i] = true;
    }
    Some(o)
}

/// Chooses the first acceptable permessage-deflate offer among `offers` (all the request's
/// extension offers, in order) for a server configured with `cfg`; `None` when compression is
/// off or no offer is acceptable.
pub fn negotiate<'a>(
    offers: impl IntoIterator<Item = ExtensionOffer<'a>>,
    cfg: &DeflateConfig,
) -> Option<Agreement> {
    if cfg.mode == Mode::Off {
        return None;
    }
    offers
        .into_iter()
        .filter(|offer| offer.name().eq_ignore_ascii_case(NAME))
        .find_map(|offer| parse(&offer))
        .map(|o| agree(o, cfg))
}

fn agree(o: Offer, cfg: &DeflateConfig) -> Agreement {
    let shared = cfg.mode == Mode::Shared;
    // Our window: what the client allows, and in dedicated mode no more than configured (a
    // smaller window than announced is invisible to the client's inflater).
    let offered = o.server_max_window_bits.unwrap_or(15);
    let server_bits = if shared {
        offered
    } else {
        offered.min(cfg.server_max_window_bits.clamp(9, 15))
    };
    // The client's window: ours to lower only when it offered the parameter.
    let client_bits = match o.client_max_window_bits {
        Some(v) if !shared => v.unwrap_or(15).min(cfg.client_max_window_bits.clamp(8, 15)),
        Some(v) => v.unwrap_or(15),
        None => 15,
    };
    Agreement {
        server_no_context_takeover: shared || o.server_no_context_takeover,
        client_no_context_takeover: shared || o.client_no_context_takeover,
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
        say_server_bits: o.server_max_window_bits.is_some(),
        // Stated in dedicated mode to bound the client's window (and our inflater); in shared
        // mode the client resets anyway and our worker-wide inflater has 15 bits.
        say_client_bits: !shared && o.client_max_window_bits.is_some(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::handshake::Extensions;

    fn negotiate_header(value: &str, mode: Mode) -> Option<String> {
        let headers = [httparse::Header {
            name: "Sec-WebSocket-Extensions",
            value: value.as_bytes(),
        }];
        let cfg = DeflateConfig {
            mode,
            ..DeflateConfig::default()
        };
        negotiate(Extensions::new(&headers), &cfg).map(|a| a.response())
    }

    fn shared(value: &str) -> Option<String> {
        negotiate_header(value, Mode::Shared)
    }

    fn dedicated(value: &str) -> Option<String> {
        negotiate_header(value, Mode::Dedicated)
    }

    #[test]
    fn off_ignores_every_offer() {
        assert_eq!(negotiate_header("permessage-deflate", Mode::Off), None);
    }

    #[test]
    fn a_browser_offer() {
        let chrome = "permessage-deflate; client_max_window_bits";
        assert_eq!(
            shared(chrome).as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        );
        assert_eq!(
            dedicated(chrome).as_deref(),
            Some("permessage-deflate; client_max_window_bits=10")
        );
    }

    #[test]
    fn window_bits_are_echoed_same_or_smaller() {
        assert_eq!(
            shared("permessage-deflate; server_max_window_bits=9").as_deref(),
            Some(
                "permessage-deflate; server_no_context_takeover; client_no_context_takeover; \
                 server_max_window_bits=9"
            )
        );
        // Dedicated lowers an offered 15 to its configured 10.
        assert_eq!(
            dedicated("permessage-deflate; server_max_window_bits=15; client_max_window_bits=12")
                .as_deref(),
            Some("permessage-deflate; server_max_window_bits=10; client_max_window_bits=10")
        );
        // ... and never raises an offered smaller value.
        assert_eq!(
            dedicated("permessage-deflate; server_max_window_bits=8; client_max_window_bits=9")
                .as_deref(),
            Some("permessage-deflate; server_max_window_bits=8; client_max_window_bits=9")
        );
        // Quoted values are the same values (§9.1 quoted-string).
        assert_eq!(
            dedicated("permessage-deflate; server_max_window_bits=\"9\"").as_deref(),
            Some("permessage-deflate; server_max_window_bits=9")
        );
    }

    #[test]
    fn context_takeover_requests_are_honoured() {
        assert_eq!(
            dedicated("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
                .as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        );
    }

    #[test]
    fn malformed_offers_are_declined_and_the_next_one_taken() {
        for bad in [
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=+9",
            "permessage-deflate; client_max_window_bits=0",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=true",
            "permessage-deflate; client_no_context_takeover; client_no_context_takeover",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            "permessage-deflate; mux",
            "permessage-deflate; constructor",
        ] {
            assert_eq!(shared(bad), None, "{bad}");
            let list = format!("{bad}, permessage-deflate; server_max_window_bits=12");
            assert_eq!(
                dedicated(&list).as_deref(),
                Some("permessage-deflate; server_max_window_bits=10"),
                "{list}"
            );
        }
    }

    #[test]
    fn the_first_acceptable_offer_wins_and_other_extensions_are_ignored() {
        assert_eq!(
            dedicated(
                "x-webkit-deflate-frame, permessage-deflate; client_no_context_takeover, \
                 permessage-deflate"
            )
            .as_deref(),
            Some("permessage-deflate; client_no_context_takeover")
        );
        assert_eq!(dedicated("x-webkit-deflate-frame, foo; bar=1"), None);
        // Names are case-insensitive tokens.
        assert_eq!(
            dedicated("PerMessage-Deflate; Client_No_Context_Takeover").as_deref(),
            Some("permessage-deflate; client_no_context_takeover")
        );
    }

    #[test]
    fn agreement_windows_drive_the_codec() {
        let headers = [httparse::Header {
            name: "Sec-WebSocket-Extensions",
            value: b"permessage-deflate; client_max_window_bits; server_max_window_bits=11",
        }];
        let cfg = DeflateConfig {
            mode: Mode::Dedicated,
            server_max_window_bits: 15,
            client_max_window_bits: 9,
            ..DeflateConfig::default()
        };
        let a = negotiate(Extensions::new(&headers), &cfg).unwrap();
        assert_eq!(
            (a.server_max_window_bits, a.client_max_window_bits),
            (11, 9)
        );
        assert!(!a.server_no_context_takeover && !a.client_no_context_takeover);
    }
}

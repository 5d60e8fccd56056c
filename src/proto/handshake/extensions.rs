//! The `Sec-WebSocket-Extensions` grammar of RFC 6455 §9.1:
//!
//! ```text
//! extension-list  = 1#extension
//! extension       = extension-token *( ";" extension-param )
//! extension-param = token [ "=" (token | quoted-string) ]
//!     ; a quoted-string value, once unescaped, MUST be a token
//! ```
//!
//! Optional whitespace is allowed around `,`, `;` and `=`. Names are plain strings compared by
//! the caller, never keys of some object or map, so any token is safe as a name (ws
//! GHSA-5v72-xg48-5rpm crashed on `constructor` and `__proto__`).
//!
//! Splitting on `,` then `;` then `=` is exact: a valid quoted value unescapes to a token, and a
//! token holds none of `,;="`, so a separator inside quotes always leaves an unbalanced quote
//! in its piece, which fails validation. Each byte is looked at a bounded number of times.
//!
//! A request's header is validated once, eagerly, by [`Request::parse`](super::Request::parse)
//! (malformed: [`Error::BadHeaderValue`](crate::proto::error::Error::BadHeaderValue)), so the
//! iterators here yield plain values, not `Result`s.

use std::borrow::Cow;

use super::tokens::{HeaderListItems, is_tchar, is_token, list_items};

/// One extension offered by the client: a name and its parameters, e.g.
/// `permessage-deflate; client_max_window_bits`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ExtensionOffer<'a> {
    name: &'a str,
    /// Everything after the first `;`, or `None` when there is no `;`.
    params: Option<&'a str>,
}

impl<'a> ExtensionOffer<'a> {
    /// The extension token, e.g. `permessage-deflate`, exactly as sent (compare it
    /// case-insensitively: tokens are case-insensitive).
    pub fn name(&self) -> &'a str {
        self.name
    }

    /// The parameters in order, each as `(name, value)`: `None` for a bare `p`, `Some` for
    /// `p=v` or `p="v"` (quotes removed and escapes resolved; borrowed unless there were
    /// escapes).
    pub fn params(&self) -> ExtensionParams<'a> {
        ExtensionParams {
            pieces: self.params.map(|params| params.split(';')),
        }
    }
}

/// The parameters of one [`ExtensionOffer`]; see [`ExtensionOffer::params`].
#[derive(Debug, Clone)]
pub struct ExtensionParams<'a> {
    pieces: Option<core::str::Split<'a, char>>,
}

impl<'a> Iterator for ExtensionParams<'a> {
    type Item = (&'a str, Option<Cow<'a, str>>);

    fn next(&mut self) -> Option<Self::Item> {
        let pieces = self.pieces.as_mut()?;
        // Validated when the offer was made; a piece that does not parse is skipped (unreachable).
        pieces.find_map(parse_param)
    }
}

/// The extensions offered in every `Sec-WebSocket-Extensions` header of a request, in order;
/// see [`UpgradeRequest::extensions`](super::UpgradeRequest::extensions).
#[derive(Debug, Clone)]
pub struct Extensions<'a> {
    items: HeaderListItems<'a>,
}

impl<'a> Extensions<'a> {
    pub(crate) fn new(headers: &'a [httparse::Header<'a>]) -> Self {
        Self {
            items: HeaderListItems::new(headers, "sec-websocket-extensions"),
        }
    }
}

impl<'a> Iterator for Extensions<'a> {
    type Item = ExtensionOffer<'a>;

    fn next(&mut self) -> Option<ExtensionOffer<'a>> {
        // Validated by `Request::parse`; an element that does not parse is skipped (unreachable).
        self.items.by_ref().find_map(parse_offer)
    }
}

/// Whether every element of the comma-separated `value` is a valid extension; returns how many
/// there are (empty elements are skipped and not counted), or `None` if one is malformed.
pub(crate) fn validate_list(value: &[u8]) -> Option<usize> {
    let mut count = 0usize;
    for item in list_items(value) {
        let offer = parse_offer(item)?;
        // Walk the parameters with the same parser the iterator uses, failing on the first
        // malformed one instead of skipping it.
        for piece in offer
            .params
            .into_iter()
            .flat_map(|params| params.split(';'))
        {
            parse_param(piece)?;
        }
        count += 1;
    }
    Some(count)
}

/// Parses one list element (already trimmed, non-empty): the name, and the raw parameters
/// after the first `;`. Only the name is checked here; see [`validate_list`].
fn parse_offer(item: &[u8]) -> Option<ExtensionOffer<'_>> {
    let item = core::str::from_utf8(item).ok()?;
    let (name, params) = match item.split_once(';') {
        Some((name, params)) => (name, Some(params)),
        None => (item, None),
    };
    let name = trim_str(name);
    if !is_token(name.as_bytes()) {
        return None;
    }
    Some(ExtensionOffer { name, params })
}

/// Parses one `extension-param` (the text between two `;`), or `None` if malformed.
fn parse_param(piece: &str) -> Option<(&str, Option<Cow<'_, str>>)> {
    let (name, value) = match piece.split_once('=') {
        Some((name, value)) => (trim_str(name), Some(trim_str(value))),
        None => (trim_str(piece), None),
    };
    if !is_token(name.as_bytes()) {
        return None;
    }
    let value = match value {
        None => None,
        Some(value) => Some(parse_value(value)?),
    };
    Some((name, value))
}

/// A parameter value: a token, or a quoted-string whose unescaped content is a token.
fn parse_value(value: &str) -> Option<Cow<'_, str>> {
    let Some(quoted) = value.strip_prefix('"') else {
        return is_token(value.as_bytes()).then_some(Cow::Borrowed(value));
    };
    let inner = quoted.strip_suffix('"')?;
    if !inner.contains('\\') {
        return is_token(inner.as_bytes()).then_some(Cow::Borrowed(inner));
    }
    // quoted-pair = "\" ( HTAB / SP / VCHAR / obs-text ); the unescaped text must be a token,
    // so only an escaped tchar can be valid.
    let mut out = String::with_capacity(inner.len());
    let mut bytes = inner.bytes();
    while let Some(b) = bytes.next() {
        let c = if b == b'\\' { bytes.next()? } else { b };
        if !is_tchar(c) {
            return None;
        }
        out.push(char::from(c));
    }
    (!out.is_empty()).then_some(Cow::Owned(out))
}

fn trim_str(s: &str) -> &str {
    s.trim_matches([' ', '\t'])
}

#[cfg(test)]
mod tests {
    use super::*;

    type Param = (String, Option<String>);

    fn offers(value: &[u8]) -> Vec<(String, Vec<Param>)> {
        list_items(value)
            .map(|item| {
                let offer = parse_offer(item).expect("valid offer");
                let params = offer
                    .params()
                    .map(|(n, v)| (n.to_owned(), v.map(Cow::into_owned)))
                    .collect();
                (offer.name().to_owned(), params)
            })
            .collect()
    }

    fn p(name: &str, value: Option<&str>) -> Param {
        (name.to_owned(), value.map(str::to_owned))
    }

    #[test]
    fn parses_the_rfc_grammar() {
        let value = b"permessage-deflate; client_max_window_bits; server_max_window_bits=10, \
                      x-foo ; a = \"b\" ;c=\"d\\e\", bare";
        assert_eq!(validate_list(value), Some(3));
        assert_eq!(
            offers(value),
            vec![
                (
                    "permessage-deflate".to_owned(),
                    vec![
                        p("client_max_window_bits", None),
                        p("server_max_window_bits", Some("10"))
                    ]
                ),
                (
                    "x-foo".to_owned(),
                    vec![p("a", Some("b")), p("c", Some("de"))]
                ),
                ("bare".to_owned(), vec![]),
            ]
        );
    }

    #[test]
    fn quoted_value_borrows_unless_escaped() {
        assert!(matches!(parse_value("\"15\""), Some(Cow::Borrowed("15"))));
        assert!(matches!(parse_value("15"), Some(Cow::Borrowed("15"))));
        assert_eq!(parse_value("\"1\\5\"").as_deref(), Some("15"));
    }

    #[test]
    fn object_prototype_names_are_plain_names() {
        let value =
            b"constructor; __proto__=hasOwnProperty, __proto__, hasOwnProperty; constructor";
        assert_eq!(validate_list(value), Some(3));
        let got = offers(value);
        assert_eq!(got[0].0, "constructor");
        assert_eq!(got[0].1, vec![p("__proto__", Some("hasOwnProperty"))]);
        assert_eq!(got[1].0, "__proto__");
        assert_eq!(got[2].0, "hasOwnProperty");
        assert_eq!(got[2].1, vec![p("constructor", None)]);
    }

    #[test]
    fn rejects_malformed_lists() {
        for bad in [
            &b"a;"[..],       // empty parameter
            b"a;;b",          // empty parameter
            b";a",            // no name
            b"a b",           // space inside a token
            b"a; b=",         // empty value
            b"a; =c",         // no parameter name
            b"a; b=\"\"",     // empty quoted value
            b"a; b=\"c",      // unterminated quote
            b"a; b=c\"",      // stray quote
            b"a; b=\"c,d\"",  // separator inside quotes
            b"a; b=\"c;d\"",  // separator inside quotes
            b"a; b=\"c d\"",  // quoted value not a token
            b"a; b=\"c\\\"",  // escape eats the closing quote
            b"a; b=\"c\\ \"", // escaped space is not a tchar
            b"a; b=c=d",      // second '='
            b"a; b=c d",      // space inside a value
            "é".as_bytes(),   // not ASCII
            b"a\r\nX-Injected: 1",
        ] {
            assert_eq!(
                validate_list(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn empty_elements_are_skipped() {
        assert_eq!(validate_list(b""), Some(0));
        assert_eq!(validate_list(b" , ,"), Some(0));
        assert_eq!(validate_list(b",a,,b,"), Some(2));
    }

    #[test]
    fn repeated_headers_are_one_list() {
        let headers = [
            httparse::Header {
                name: "Sec-WebSocket-Extensions",
                value: b"a; x=1",
            },
            httparse::Header {
                name: "sec-websocket-extensions",
                value: b"b, c",
            },
        ];
        let names: Vec<&str> = Extensions::new(&headers).map(|o| o.name()).collect();
        assert_eq!(names, ["a", "b", "c"]);
    }

    #[test]
    fn long_lists_are_linear() {
        // 8 KiB of separators: each byte is looked at a bounded number of times.
        let value = ";".repeat(8192);
        assert_eq!(validate_list(format!("a{value}").as_bytes()), None);
        let value = ", a".repeat(3000);
        assert_eq!(validate_list(value.as_bytes()), Some(3000));
        let value = "a".to_owned() + &"; b=\"c\"".repeat(1000);
        assert_eq!(validate_list(value.as_bytes()), Some(1));
    }
}

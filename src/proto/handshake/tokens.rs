//! HTTP list and token helpers (RFC 9110 §5.6): the comma-separated `#rule` lists of
//! `Connection`, `Upgrade`, `Sec-WebSocket-Protocol` and `Sec-WebSocket-Extensions`.
//!
//! Plain byte splitting, no regular expressions and no backtracking: every function here looks
//! at each input byte a bounded number of times (ws CVE-2021-32640 was a ReDoS in exactly this
//! splitting).

use core::slice;

/// Removes optional whitespace (`OWS = *( SP / HTAB )`) from both ends.
pub(crate) fn trim_ows(bytes: &[u8]) -> &[u8] {
    let is_ows = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes.iter().position(|b| !is_ows(b)).unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_ows(b))
        .map_or(start, |i| i + 1);
    bytes.get(start..end).unwrap_or_default()
}

/// `tchar` of RFC 9110 §5.6.2: the characters allowed in a `token`.
pub(crate) const fn is_tchar(b: u8) -> bool {
    matches!(b,
        b'!' | b'#' | b'$' | b'%' | b'&' | b'\'' | b'*' | b'+' | b'-' | b'.' | b'^' | b'_' | b'`'
        | b'|' | b'~' | b'0'..=b'9' | b'a'..=b'z' | b'A'..=b'Z')
}

/// Whether `bytes` is a `token`: one or more `tchar`.
pub(crate) fn is_token(bytes: &[u8]) -> bool {
    !bytes.is_empty() && bytes.iter().all(|&b| is_tchar(b))
}

/// The non-empty, OWS-trimmed elements of one comma-separated header value.
///
/// Empty elements (`a,,b`, a leading or trailing comma) are skipped, as RFC 9110 §5.6.1 asks of
/// recipients.
pub(crate) fn list_items(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value
        .split(|&b| b == b',')
        .map(trim_ows)
        .filter(|item| !item.is_empty())
}

/// Whether the list in `value` has an element equal to `token`, ignoring ASCII case.
pub(crate) fn list_contains(value: &[u8], token: &str) -> bool {
    list_items(value).any(|item| item.eq_ignore_ascii_case(token.as_bytes()))
}

/// The list elements of every header named `name` (case-insensitively), in order, as one list.
///
/// RFC 9110 §5.3: a list header repeated on several lines is the same as one line with the
/// values joined by commas.
#[derive(Debug, Clone)]
pub(crate) struct HeaderListItems<'a> {
    name: &'static str,
    headers: slice::Iter<'a, httparse::Header<'a>>,
    current: core::slice::Split<'a, u8, fn(&u8) -> bool>,
    /// Raw pieces looked at so far (tests count the work: each piece once, never again).
    #[cfg(test)]
    pub(crate) pieces: usize,
}

fn is_comma(b: &u8) -> bool {
    *b == b','
}

impl<'a> HeaderListItems<'a> {
    /// The elements of the headers called `name` among `headers`.
    pub(crate) fn new(headers: &'a [httparse::Header<'a>], name: &'static str) -> Self {
        let empty: &'a [u8] = &[];
        let mut current = empty.split(is_comma as fn(&u8) -> bool);
        // `split` of an empty slice yields one empty item; consume it so `current` starts done.
        current.next();
        Self {
            name,
            headers: headers.iter(),
            current,
            #[cfg(test)]
            pieces: 0,
        }
    }
}

impl<'a> Iterator for HeaderListItems<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        loop {
            if let Some(item) = self.current.next() {
                #[cfg(test)]
                {
                    self.pieces += 1;
                }
                let item = trim_ows(item);
                if !item.is_empty() {
                    return Some(item);
                }
                continue;
            }
            let header = self
                .headers
                .by_ref()
                .find(|h| h.name.eq_ignore_ascii_case(self.name))?;
            self.current = header.value.split(is_comma as fn(&u8) -> bool);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn trims_spaces_and_tabs_only() {
        assert_eq!(trim_ows(b" \t a b \t"), b"a b");
        assert_eq!(trim_ows(b"   "), b"");
        assert_eq!(trim_ows(b""), b"");
        assert_eq!(trim_ows(b"\r\nx"), b"\r\nx");
    }

    #[test]
    fn tokens() {
        assert!(is_token(b"permessage-deflate"));
        assert!(is_token(b"chat.v2+json"));
        assert!(!is_token(b""));
        assert!(!is_token(b"a b"));
        assert!(!is_token(b"a,b"));
        assert!(!is_token(b"a\"b"));
        assert!(!is_token("é".as_bytes()));
    }

    #[test]
    fn list_items_skip_empty_and_trim() {
        let items: Vec<&[u8]> = list_items(b" , a ,,\tb c ,").collect();
        assert_eq!(items, [&b"a"[..], &b"b c"[..]]);
        assert_eq!(list_items(b",,,,").count(), 0);
    }

    #[test]
    fn list_contains_ignores_case() {
        assert!(list_contains(b"keep-alive, Upgrade", "upgrade"));
        assert!(list_contains(b"UPGRADE", "upgrade"));
        assert!(!list_contains(b"keep-alive", "upgrade"));
        assert!(!list_contains(b"upgrade-insecure", "upgrade"));
        assert!(!list_contains(b"up grade", "upgrade"));
    }

    #[test]
    fn header_list_items_join_repeated_headers() {
        let headers = [
            httparse::Header {
                name: "Sec-WebSocket-Protocol",
                value: b"a, b",
            },
            httparse::Header {
                name: "Host",
                value: b"x",
            },
            httparse::Header {
                name: "sec-websocket-protocol",
                value: b"",
            },
            httparse::Header {
                name: "SEC-WEBSOCKET-PROTOCOL",
                value: b",c,,",
            },
        ];
        let items: Vec<&[u8]> = HeaderListItems::new(&headers, "sec-websocket-protocol").collect();
        assert_eq!(items, [&b"a"[..], b"b", b"c"]);
        assert_eq!(HeaderListItems::new(&headers, "origin").count(), 0);
        assert_eq!(HeaderListItems::new(&[], "origin").count(), 0);
    }
}

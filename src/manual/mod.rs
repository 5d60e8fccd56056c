//! The ringws manual: documentation only, no code.
//!
//! Like rustls' `manual`, this module holds the parts of the documentation that are about the
//! design rather than one API: here, what a WebSocket server owes its users' security, and what
//! went wrong in servers before it.
//!
//! - [`security`]: RFC 6455 §10 duties and past vulnerabilities of WebSocket implementations,
//!   each mapped to the code that prevents it and the test that proves it.
//!
//! Every test reference in these pages names a test function that exists; a unit test of this
//! module checks that, so the pages cannot silently fall behind the code.

pub mod security;

#[cfg(test)]
mod tests {
    /// Every test reference (PATH#NAME) in the manual names a `fn NAME` in `src/PATH`.
    #[test]
    fn every_test_reference_exists() {
        let page = include_str!("security.rs");
        let mut checked = 0;
        for (i, _) in page.match_indices("test: ") {
            let rest = &page[i + "test: ".len()..];
            let end = rest
                .find(|c: char| !(c.is_alphanumeric() || "_/.#".contains(c)))
                .unwrap_or(rest.len());
            let reference = &rest[..end];
            let (path, name) = reference
                .split_once('#')
                .unwrap_or_else(|| panic!("bad reference {reference}"));
            let file = format!("{}/src/{path}", env!("CARGO_MANIFEST_DIR"));
            let source = std::fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("{reference}: {file}: {e}"));
            assert!(
                source.contains(&format!("fn {name}(")),
                "{reference}: no fn {name} in {path}"
            );
            checked += 1;
        }
        assert!(checked >= 20, "only {checked} test references found");
    }
}

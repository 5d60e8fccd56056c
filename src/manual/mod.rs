//! The ringws manual: documentation only, no code.
//!
//! Like rustls' `manual`, this module holds the parts of the documentation that are about the
//! design rather than one API: what a WebSocket server owes its users' security, what went wrong
//! in servers before it, and the memory lifetimes io_uring brings that the compiler cannot see.
//!
//! - [`security`]: RFC 6455 §10 duties, compression side channels and past vulnerabilities of
//!   WebSocket implementations, each mapped to the code that prevents it and the test that
//!   proves it.
//! - [`io_uring`]: receive buffers, send memory, descriptors, wake-ups between rings and
//!   teardown: who owns what until when, and the test of each rule.
//!
//! Every test reference in these pages names a `#[test]` function that exists; a unit test of
//! this module checks that, so the pages cannot silently fall behind the code.

pub mod io_uring;
pub mod security;

#[cfg(test)]
mod tests {
    /// Whether `source` has `fn name(` preceded by a `#[test]` attribute (among the attributes
    /// and doc comments right above it).
    fn is_test_fn(source: &str, name: &str) -> bool {
        let lines: Vec<&str> = source.lines().collect();
        let needle = format!("fn {name}(");
        lines.iter().enumerate().any(|(i, line)| {
            if !line.trim_start().starts_with(&needle) {
                return false;
            }
            // Walk up through the item's attributes (which may span lines) and doc comments,
            // to the end of the previous item.
            lines[..i]
                .iter()
                .rev()
                .take_while(|l| {
                    let t = l.trim();
                    !(t.is_empty() || t.ends_with('}') || t.ends_with(';') || t.ends_with('{'))
                })
                .any(|l| l.trim() == "#[test]")
        })
    }

    /// Every test reference (PATH#NAME) in the manual's pages names a `#[test] fn NAME` in
    /// `src/PATH`.
    #[test]
    fn every_test_reference_is_a_test_that_exists() {
        let mut checked = 0;
        for (page_name, page) in [
            ("security.rs", include_str!("security.rs")),
            ("io_uring.rs", include_str!("io_uring.rs")),
        ] {
            let mut on_page = 0;
            for (i, _) in page.match_indices("test: ") {
                let rest = &page[i + "test: ".len()..];
                let end = rest
                    .find(|c: char| !(c.is_alphanumeric() || "_/.#".contains(c)))
                    .unwrap_or(rest.len());
                let reference = &rest[..end];
                let (path, name) = reference
                    .split_once('#')
                    .unwrap_or_else(|| panic!("{page_name}: bad reference {reference}"));
                let file = format!("{}/src/{path}", env!("CARGO_MANIFEST_DIR"));
                let source = std::fs::read_to_string(&file)
                    .unwrap_or_else(|e| panic!("{page_name}: {reference}: {file}: {e}"));
                assert!(
                    is_test_fn(&source, name),
                    "{page_name}: {reference}: no #[test] fn {name} in {path}"
                );
                on_page += 1;
            }
            assert!(on_page >= 10, "{page_name}: only {on_page} test references");
            checked += on_page;
        }
        assert!(checked >= 40, "only {checked} test references found");
    }

    #[test]
    fn a_helper_named_like_a_test_does_not_count() {
        let source = "fn helper() {}\n\n#[test]\nfn real() {}\n\n#[cfg_attr(\n    x,\n    \
                      ignore = \"y\"\n)]\n#[test]\nfn with_attrs() {}\n";
        assert!(!is_test_fn(source, "helper"));
        assert!(is_test_fn(source, "real"));
        assert!(is_test_fn(source, "with_attrs"));
        assert!(!is_test_fn(source, "missing"));
    }
}

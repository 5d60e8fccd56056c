//! Which SIMD paths run, checked against what this CPU has (the unmasking's own choice is
//! checked in `src/proto/mask/tests.rs`, AVX-512 and AVX2 against CPUID, NEON on aarch64).
//!
//! UTF-8 validation is simdutf8's: on aarch64 it takes its NEON validator whenever that is
//! compiled in. Here the NEON validator is called by name (it exists only if compiled in) and
//! `ringws::proto::utf8::validate` is shown to agree with it, valid and invalid input alike.
//! `tests/aarch64.sh` runs this under qemu-aarch64.

#[cfg(target_arch = "aarch64")]
#[test]
fn utf8_validation_agrees_with_simdutf8s_neon_validator() {
    use ringws::proto::utf8::validate;
    use simdutf8::basic::imp::aarch64::neon;
    let check = |input: &[u8]| {
        // SAFETY: NEON is part of the aarch64 Linux baseline (every such CPU has it), which is
        // all this validator requires.
        let neon_ok = unsafe { neon::validate_utf8(input) }.is_ok();
        assert_eq!(neon_ok, std::str::from_utf8(input).is_ok());
        assert_eq!(validate(input).is_ok(), neon_ok);
    };
    let long = "ασκησης κόσμε 𝄞 ".repeat(40);
    check(long.as_bytes());
    check(b"plain ascii, long enough for a vector or two of sixteen bytes");
    let mut bad = long.into_bytes();
    for at in [0, 15, 16, 100, bad.len() - 1] {
        let keep = bad[at];
        bad[at] = 0xff;
        check(&bad);
        bad[at] = keep;
    }
}

/// On x86_64 simdutf8 chooses at run time (AVX2 or SSE 4.2, else the standard library's); its
/// answers must be the standard library's whatever it chose.
#[cfg(target_arch = "x86_64")]
#[test]
fn utf8_validation_agrees_with_the_standard_library() {
    use ringws::proto::utf8::validate;
    let long = "ασκησης κόσμε 𝄞 ".repeat(40).into_bytes();
    for at in [None, Some(0), Some(31), Some(32), Some(500)] {
        let mut input = long.clone();
        if let Some(at) = at {
            input[at] = 0xc0;
        }
        assert_eq!(
            validate(&input).is_ok(),
            std::str::from_utf8(&input).is_ok()
        );
    }
}

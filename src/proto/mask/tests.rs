//! Every implementation against `Scalar`: all short lengths, phases and start offsets; phase
//! carried across split points; random long buffers (proptest); and involution.

use proptest::prelude::*;

use super::{Impl, apply, apply_with, end_phase};

const KEY: [u8; 4] = [0x9d, 0x21, 0x5e, 0xf0];

/// Deterministic pseudo-random bytes (xorshift64), so big inputs cost no proptest shrinking.
fn bytes(len: usize, seed: u64) -> Vec<u8> {
    let mut s = seed | 1;
    (0..len)
        .map(|_| {
            s ^= s << 13;
            s ^= s >> 7;
            s ^= s << 17;
            (s >> 24) as u8
        })
        .collect()
}

/// The reference result.
fn reference(buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
    apply_with(Impl::Scalar, buf, key, phase).expect("Scalar is always available")
}

/// Runs `imp`, which the caller got from `Impl::available`.
fn run(imp: Impl, buf: &mut [u8], key: [u8; 4], phase: usize) -> usize {
    apply_with(imp, buf, key, phase).expect("only available impls are run")
}

#[test]
fn scalar_follows_the_rfc() {
    // RFC 6455 §5.7: "Hello" masked with 37 fa 21 3d.
    let mut buf = *b"Hello";
    let key = [0x37, 0xfa, 0x21, 0x3d];
    assert_eq!(reference(&mut buf, key, 0), 1);
    assert_eq!(buf, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    // The same bytes at phase 2 use key[2], key[3], key[0], ...
    let mut one = [0u8; 3];
    assert_eq!(reference(&mut one, key, 2), 1);
    assert_eq!(one, [0x21, 0x3d, 0x37]);
}

#[test]
fn the_expected_impls_are_available() {
    let available = Impl::available();
    assert_eq!(&available[..2], &[Impl::Scalar, Impl::Word]);
    assert!(available.contains(&Impl::best()));
    assert_eq!(available.last(), Some(&Impl::best()));
    for imp in [
        Impl::Scalar,
        Impl::Word,
        Impl::Sse2,
        Impl::Avx2,
        Impl::Avx512,
        Impl::Neon,
    ] {
        assert_eq!(
            imp.is_available(),
            available.contains(&imp),
            "{}",
            imp.name()
        );
    }
    #[cfg(target_arch = "x86_64")]
    {
        assert!(Impl::Sse2.is_available());
        assert_eq!(Impl::Avx2.is_available(), is_x86_feature_detected!("avx2"));
        assert!(!Impl::Neon.is_available());
    }
    #[cfg(target_arch = "aarch64")]
    {
        assert!(Impl::Neon.is_available());
        assert!(!Impl::Sse2.is_available());
    }
    let mut buf = [0u8; 4];
    for imp in [
        Impl::Scalar,
        Impl::Word,
        Impl::Sse2,
        Impl::Avx2,
        Impl::Avx512,
        Impl::Neon,
    ] {
        assert_eq!(
            apply_with(imp, &mut buf, KEY, 0).is_some(),
            imp.is_available()
        );
    }
}

/// On aarch64 (Graviton, Ampere, Apple) NEON is always present and must be the one chosen;
/// `tests/aarch64.sh` runs this under qemu-aarch64 in CI.
#[cfg(target_arch = "aarch64")]
#[test]
fn neon_is_chosen_on_aarch64() {
    assert_eq!(Impl::best(), Impl::Neon);
    assert_eq!(Impl::best().name(), "neon");
}

/// AVX-512 is available exactly where the CPU has AVX-512F (the compiler here is 1.89 or later,
/// so it is compiled in), and then it is the one chosen; elsewhere AVX2 where the CPU has it.
#[cfg(target_arch = "x86_64")]
#[rustversion::since(1.89)]
#[test]
fn avx512_is_chosen_exactly_where_the_cpu_has_it() {
    let has = is_x86_feature_detected!("avx512f");
    assert_eq!(Impl::Avx512.is_available(), has);
    let expected = if has {
        Impl::Avx512
    } else if is_x86_feature_detected!("avx2") {
        Impl::Avx2
    } else {
        Impl::Sse2
    };
    assert_eq!(Impl::best(), expected);
}

#[test]
fn every_impl_equals_scalar_at_every_length_phase_and_offset() {
    const MAX_LEN: usize = 300;
    const OFFSETS: usize = 64;
    let original = bytes(OFFSETS + MAX_LEN + OFFSETS, 1);
    for imp in Impl::available() {
        for len in 0..=MAX_LEN {
            for phase in 0..4 {
                for offset in 0..OFFSETS {
                    let range = offset..offset + len;
                    let mut want = original.clone();
                    let want_end = reference(&mut want[range.clone()], KEY, phase);
                    let mut got = original.clone();
                    let got_end = run(imp, &mut got[range.clone()], KEY, phase);
                    assert_eq!(want_end, (phase + len) % 4);
                    assert_eq!(got_end, want_end, "{} len {len} phase {phase}", imp.name());
                    // The whole buffer, so bytes outside the slice must be untouched too.
                    assert!(
                        got == want,
                        "{} len {len} phase {phase} offset {offset}",
                        imp.name()
                    );
                }
            }
        }
    }
}

#[test]
fn apply_equals_scalar() {
    let original = bytes(5000, 2);
    for len in (0..100).chain([255, 256, 257, 1000, 4099]) {
        for phase in 0..4 {
            let mut want = original[3..3 + len].to_vec();
            let mut got = want.clone();
            assert_eq!(
                apply(&mut got, KEY, phase),
                reference(&mut want, KEY, phase)
            );
            assert_eq!(got, want, "len {len} phase {phase}");
        }
    }
}

#[test]
fn only_phase_mod_4_matters() {
    let original = bytes(1000, 3);
    for imp in Impl::available() {
        for phase in [0, 1, 2, 3] {
            let mut want = original.clone();
            let want_end = run(imp, &mut want[5..], KEY, phase);
            for big in [phase + 4, phase + 400, usize::MAX - 3 + phase] {
                let mut got = original.clone();
                assert_eq!(
                    run(imp, &mut got[5..], KEY, big),
                    want_end,
                    "{}",
                    imp.name()
                );
                assert!(got == want, "{} phase {big}", imp.name());
            }
        }
    }
    assert_eq!(end_phase(usize::MAX, usize::MAX), (3 + 3) % 4);
}

#[test]
fn phase_is_carried_across_every_split_point() {
    let original = bytes(1100, 4);
    for imp in Impl::available() {
        for phase in 0..4 {
            let mut want = original.clone();
            let want_end = reference(&mut want[1..], KEY, phase);
            for split in 0..original.len() - 1 {
                let mut got = original.clone();
                let (a, b) = got[1..].split_at_mut(split);
                let mid = run(imp, a, KEY, phase);
                assert_eq!(run(imp, b, KEY, mid), want_end);
                assert!(got == want, "{} phase {phase} split {split}", imp.name());
            }
        }
    }
}

#[test]
fn applying_twice_restores_the_original() {
    let original = bytes(70_000, 5);
    for imp in Impl::available() {
        for (start, len) in [(0, 0), (1, 15), (3, 300), (7, 4096), (13, 69_000)] {
            for phase in 0..4 {
                let mut buf = original.clone();
                let slice = &mut buf[start..start + len];
                run(imp, slice, KEY, phase);
                if len >= 4 {
                    assert!(buf != original, "{} did nothing", imp.name());
                }
                run(imp, &mut buf[start..start + len], KEY, phase);
                assert!(buf == original, "{} len {len} phase {phase}", imp.name());
            }
        }
    }
}

proptest! {
    #[test]
    fn random_buffers_and_splits_equal_scalar(
        key in any::<[u8; 4]>(),
        phase in 0usize..8,
        len in 0usize..=70_000,
        start in 0usize..64,
        seed in any::<u64>(),
        cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..6),
    ) {
        let original = bytes(start + len, seed);
        let mut want = original.clone();
        let want_end = reference(&mut want[start..], key, phase);
        let mut cuts: Vec<usize> = cuts.iter().map(|i| i.index(len + 1)).collect();
        cuts.sort_unstable();
        cuts.push(len);
        for imp in Impl::available() {
            let mut got = original.clone();
            let mut p = phase;
            let mut from = start;
            for &cut in &cuts {
                p = run(imp, &mut got[from..start + cut], key, p);
                from = start + cut;
            }
            prop_assert_eq!(p, want_end);
            prop_assert!(got == want, "{} differs", imp.name());
        }
        let mut got = original.clone();
        prop_assert_eq!(apply(&mut got[start..], key, phase), want_end);
        prop_assert!(got == want, "apply differs");
    }
}

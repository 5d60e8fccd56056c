//! The `inflate` target: libFuzzer's input through the invariants of `checks::inflate` (see
//! `fuzz/checks.rs`, shared with the stable replay in `tests/fuzz_corpus.rs`).
#![no_main]

#[path = "../checks.rs"]
mod checks;

libfuzzer_sys::fuzz_target!(|data: &[u8]| checks::inflate(data));

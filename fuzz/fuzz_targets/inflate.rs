//! permessage-deflate's inflater fed arbitrary compressed payloads, with a limit from the input.
//!
//! Invariants: no panic; the output never passes the limit (an overshoot is
//! `MessageTooLarge`, never returned data); the output buffer never grows past the limit plus
//! one block, however much the input would inflate to (zip bombs); an error is one of
//! `MessageTooLarge`/`BadCompressedData`; what inflates, deflated again, inflates back to the
//! same bytes; the worker-style inflater (reset after each message) gives the same result as a
//! fresh one.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringws::proto::Error;
use ringws::proto::deflate::{Deflater, Inflater};

fuzz_target!(|data: &[u8]| {
    let Some((head, payload)) = data.split_first_chunk::<2>() else {
        return;
    };
    let limit = usize::from(u16::from_le_bytes(*head));
    let mut shared = Inflater::new(15);
    for _ in 0..2 {
        let mut out = Vec::new();
        let result = shared.inflate(payload, limit, &mut out);
        shared.reset();
        assert!(out.capacity() <= limit + 2 * 16 * 1024, "{} for {limit}", out.capacity());
        match result {
            Ok(()) => {
                assert!(out.len() <= limit);
                let mut fresh = Vec::new();
                Inflater::new(15).inflate(payload, limit, &mut fresh).expect("same result");
                assert_eq!(fresh, out);
                let mut again = Vec::new();
                Deflater::new(1, 15, true).deflate(&out, &mut again);
                let mut back = Vec::new();
                Inflater::new(15).inflate(&again, limit, &mut back).expect("round trip");
                assert_eq!(back, out);
            }
            Err(e) => assert!(matches!(e, Error::MessageTooLarge | Error::BadCompressedData), "{e:?}"),
        }
    }
});

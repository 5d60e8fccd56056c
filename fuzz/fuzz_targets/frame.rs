//! The frame-header parser fed arbitrary bytes.
//!
//! Invariants: no panic; a parsed header re-encodes to a header that parses back to the same
//! values; the header length is within 2..=14 and within the input; a 64-bit length never has
//! its top bit set; control frames are never fragmented or over 125 bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;
use ringws::proto::frame::{Header, MAX_CONTROL_PAYLOAD, MAX_HEADER_LEN};

fuzz_target!(|data: &[u8]| {
    let Ok(Some((header, len))) = Header::parse(data) else { return };
    assert!((2..=MAX_HEADER_LEN).contains(&len) && len <= data.len());
    assert_eq!(header.payload_len >> 63, 0);
    if header.opcode.is_control() {
        assert!(header.fin && header.payload_len <= MAX_CONTROL_PAYLOAD as u64);
    }
    let encoded = header.encode();
    assert!(encoded.len() <= len, "the encoder uses the shortest form");
    let (again, again_len) = Header::parse(&encoded).expect("re-encoded header parses").expect("complete");
    assert_eq!(again, header);
    assert_eq!(again_len, encoded.len());
});

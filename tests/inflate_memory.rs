//! The inflater's memory, counted by the allocator rather than read off the process's RSS: a
//! message that inflates past the message limit (a "zip bomb") costs at most the limit plus one
//! block (`INFLATE_BLOCK`) of output memory, whatever it would inflate to. The count is of the
//! test's own thread, so nothing else running in the process can blur it.

use ringws::proto::Error;
use ringws::proto::deflate::codec::INFLATE_BLOCK;
use ringws::proto::deflate::{Deflater, Inflater};

#[path = "support/counting.rs"]
mod counting;
use counting::{held, take_peak};

const LIMIT: usize = 1 << 20;

fn bomb(inflated: usize) -> Vec<u8> {
    let mut packed = Vec::new();
    Deflater::new(9, 15, true).deflate(&vec![0u8; inflated], &mut packed);
    packed
}

#[test]
fn a_zip_bomb_costs_at_most_the_limit_plus_one_block() {
    // 64 MiB of zeros in ~64 KiB. The inflater is made and used once first: its own state (the
    // window included) is a fixed cost, not what a message costs.
    let packed = bomb(64 << 20);
    let mut inflater = Inflater::new(15);
    inflater
        .inflate(&bomb(1000), LIMIT, &mut Vec::new())
        .unwrap();
    inflater.reset();
    for attempt in 0..3 {
        let mut out = Vec::new();
        let before = held();
        take_peak();
        let result = inflater.inflate(&packed, LIMIT, &mut out);
        let cost = take_peak() - before;
        assert_eq!(result, Err(Error::MessageTooLarge));
        assert!(
            cost <= LIMIT + INFLATE_BLOCK,
            "attempt {attempt}: {cost} bytes for a {LIMIT}-byte limit (bound {})",
            LIMIT + INFLATE_BLOCK
        );
        // It got close to the limit: the bound is not met by stopping early.
        assert!(out.len() > LIMIT, "{}", out.len());
        drop(out);
        inflater.reset();
    }
}

#[test]
fn a_message_at_the_limit_costs_the_limit() {
    let packed = bomb(LIMIT);
    let mut inflater = Inflater::new(15);
    inflater
        .inflate(&bomb(1000), LIMIT, &mut Vec::new())
        .unwrap();
    inflater.reset();
    let mut out = Vec::new();
    let before = held();
    take_peak();
    inflater.inflate(&packed, LIMIT, &mut out).unwrap();
    let cost = take_peak() - before;
    assert_eq!(out.len(), LIMIT);
    assert!(cost <= LIMIT + INFLATE_BLOCK, "{cost}");
}

//! A hierarchical timer wheel: one per worker, one timer per connection.
//!
//! Time is counted in ticks (the worker's tick resolution, e.g. 100 ms). Four levels of 64
//! buckets each cover 64, 64², 64³ and 64⁴ ticks (2²⁴ ticks: 19 days at 100 ms); a later deadline
//! is clamped to the span, which is harmless for its only users (connection timeouts re-arm
//! themselves when they fire early).
//!
//! - **Insert, cancel, re-arm: O(1).** Timers are nodes of intrusive doubly linked lists, one list
//!   per bucket, stored in one array indexed by timer id (the connection's slot): no allocation
//!   per operation once the array has grown to the number of connections.
//! - **Expiry: work proportional to what expires.** Each tick empties the level-0 bucket of that
//!   tick; every 64 ticks one level-1 bucket is spread over level 0 (and so on up): a timer moves
//!   down at most three times in its life, so cascading is O(1) amortised per timer. A timer never
//!   fires early, and fires in the tick of its deadline.
//! - **Coalescing is the caller's.** A connection keeps one timer at its earliest deadline and
//!   records activity as a timestamp; when the timer fires it checks what is really due and
//!   re-arms. Traffic never touches the wheel.
//!
//! Ticks are `u32` and wrap; all comparisons are relative to the wheel's current tick.

/// Buckets per level.
const SLOTS: usize = 64;
/// Bits of a tick each level consumes.
const BITS: u32 = 6;
/// Levels.
const LEVELS: usize = 4;
/// The farthest deadline, in ticks from now, the wheel can hold.
pub const SPAN: u32 = 1 << (BITS * LEVELS as u32);
/// No node.
const NIL: u32 = u32::MAX;
/// The `bucket` of a node that is not armed.
const UNARMED: u16 = u16::MAX;

#[derive(Debug, Clone, Copy)]
struct Node {
    deadline: u32,
    prev: u32,
    next: u32,
    /// `level * 64 + slot`, or [`UNARMED`].
    bucket: u16,
}

impl Node {
    const EMPTY: Node = Node {
        deadline: 0,
        prev: NIL,
        next: NIL,
        bucket: UNARMED,
    };
}

/// A timer wheel (see the module docs).
#[derive(Debug)]
pub struct Wheel {
    /// The last tick processed: every deadline up to it has fired.
    now: u32,
    heads: [u32; SLOTS * LEVELS],
    /// Which buckets of each level hold timers.
    occupied: [u64; LEVELS],
    nodes: Vec<Node>,
    armed: usize,
}

impl Wheel {
    /// An empty wheel whose current tick is `now`.
    pub fn new(now: u32) -> Self {
        Wheel {
            now,
            heads: [NIL; SLOTS * LEVELS],
            occupied: [0; LEVELS],
            nodes: Vec::new(),
            armed: 0,
        }
    }

    /// An empty wheel with room for timer ids below `ids` reserved up front: the node array
    /// then never moves (a doubling array would copy itself and may leave the old copies
    /// resident); untouched pages of the reservation cost no memory.
    pub fn with_capacity(now: u32, ids: usize) -> Self {
        let mut wheel = Wheel::new(now);
        wheel.nodes.reserve_exact(ids);
        wheel
    }

    /// The last tick processed.
    pub fn now(&self) -> u32 {
        self.now
    }

    /// Timers armed.
    pub fn len(&self) -> usize {
        self.armed
    }

    /// Whether no timer is armed.
    pub fn is_empty(&self) -> bool {
        self.armed == 0
    }

    /// Whether timer `id` is armed.
    pub fn is_armed(&self, id: u32) -> bool {
        self.nodes
            .get(id as usize)
            .is_some_and(|n| n.bucket != UNARMED)
    }

    /// Arms timer `id` for `deadline` (moving it if armed). A deadline not after the current
    /// tick fires at the next tick; one beyond [`SPAN`] is clamped to it.
    pub fn insert(&mut self, id: u32, deadline: u32) {
        self.cancel(id);
        if self.nodes.len() <= id as usize {
            self.nodes.resize(id as usize + 1, Node::EMPTY);
        }
        let delta = (deadline.wrapping_sub(self.now) as i32).clamp(1, (SPAN - 1) as i32) as u32;
        self.place(id, self.now.wrapping_add(delta));
        self.armed += 1;
    }

    /// Disarms timer `id` (nothing if it is not armed).
    pub fn cancel(&mut self, id: u32) {
        if self.is_armed(id) {
            self.unlink(id);
            self.armed -= 1;
        }
    }

    /// The tick by which [`Wheel::advance`] must next be called: the earliest deadline in level
    /// 0, or the next cascade if only higher levels hold timers; `None` when nothing is armed.
    pub fn next_wake(&self) -> Option<u32> {
        if self.armed == 0 {
            return None;
        }
        // In ticks from now: the earliest level-0 deadline, and the next cascade (a higher-level
        // timer may come down to a deadline before the level-0 one).
        let mut wake = u32::MAX;
        if self.occupied[0] != 0 {
            // Buckets from now+1 on, wrapping: rotate so bit 0 is now+1.
            let pos = self.now.wrapping_add(1) & (SLOTS as u32 - 1);
            wake = 1 + self.occupied[0].rotate_right(pos).trailing_zeros();
        }
        if self.occupied[1..].iter().any(|&o| o != 0) {
            let cascade = (self.now | (SLOTS as u32 - 1)).wrapping_add(1);
            wake = wake.min(cascade.wrapping_sub(self.now));
        }
        Some(self.now.wrapping_add(wake))
    }

    /// Moves time to `to` (if later), pushing the id of every timer whose deadline passed onto
    /// `fired`, each exactly once, in tick order.
    pub fn advance(&mut self, to: u32, fired: &mut Vec<u32>) {
        while (to.wrapping_sub(self.now) as i32) > 0 {
            if self.armed == 0 {
                self.now = to;
                return;
            }
            self.now = self.now.wrapping_add(1);
            let t = self.now;
            // Cascade from the top down, so a timer can fall through several levels this tick.
            for level in (1..LEVELS).rev() {
                let shift = BITS * level as u32;
                if t & ((1 << shift) - 1) == 0 {
                    let slot = ((t >> shift) as usize) & (SLOTS - 1);
                    self.cascade(level * SLOTS + slot);
                }
            }
            let bucket = (t as usize) & (SLOTS - 1);
            let mut id = self.heads[bucket];
            while id != NIL {
                let next = self.nodes[id as usize].next;
                self.unlink(id);
                self.armed -= 1;
                fired.push(id);
                id = next;
            }
        }
    }

    /// Re-places every timer of a higher-level bucket relative to the current tick.
    fn cascade(&mut self, bucket: usize) {
        let mut id = self.heads[bucket];
        while id != NIL {
            let next = self.nodes[id as usize].next;
            let deadline = self.nodes[id as usize].deadline;
            self.unlink(id);
            // Due now (deadline == now) goes to this tick's level-0 bucket, emptied next.
            let delta = deadline.wrapping_sub(self.now);
            self.place_at(id, deadline, delta);
            id = next;
        }
    }

    fn place(&mut self, id: u32, deadline: u32) {
        let delta = deadline.wrapping_sub(self.now);
        self.place_at(id, deadline, delta);
    }

    fn place_at(&mut self, id: u32, deadline: u32, delta: u32) {
        let mut level = 0;
        while level + 1 < LEVELS && delta >= 1 << (BITS * (level as u32 + 1)) {
            level += 1;
        }
        let slot = ((deadline >> (BITS * level as u32)) as usize) & (SLOTS - 1);
        let bucket = level * SLOTS + slot;
        let head = self.heads[bucket];
        self.nodes[id as usize] = Node {
            deadline,
            prev: NIL,
            next: head,
            bucket: bucket as u16,
        };
        if head != NIL {
            self.nodes[head as usize].prev = id;
        }
        self.heads[bucket] = id;
        self.occupied[level] |= 1 << slot;
    }

    fn unlink(&mut self, id: u32) {
        let Node {
            prev, next, bucket, ..
        } = self.nodes[id as usize];
        let bucket = usize::from(bucket);
        if prev != NIL {
            self.nodes[prev as usize].next = next;
        } else {
            self.heads[bucket] = next;
            if next == NIL {
                self.occupied[bucket / SLOTS] &= !(1 << (bucket % SLOTS));
            }
        }
        if next != NIL {
            self.nodes[next as usize].prev = prev;
        }
        self.nodes[id as usize] = Node::EMPTY;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;
    use std::collections::BTreeMap;

    fn run_to(w: &mut Wheel, to: u32) -> Vec<(u32, u32)> {
        let mut fired_at = Vec::new();
        while w.now() != to {
            let mut fired = Vec::new();
            let t = w.now().wrapping_add(1);
            w.advance(t, &mut fired);
            fired_at.extend(fired.into_iter().map(|id| (id, t)));
        }
        fired_at
    }

    #[test]
    fn fires_at_the_deadline_tick_at_every_level() {
        for deadline in [
            1u32, 2, 63, 64, 65, 4095, 4096, 4097, 262_143, 262_144, 300_000, 5_000_000,
        ] {
            let mut w = Wheel::new(0);
            w.insert(7, deadline);
            assert_eq!(run_to(&mut w, deadline - 1), vec![], "early for {deadline}");
            assert_eq!(
                run_to(&mut w, deadline),
                vec![(7, deadline)],
                "deadline {deadline}"
            );
            assert_eq!(w.len(), 0);
        }
    }

    #[test]
    fn past_deadlines_fire_next_tick_and_far_ones_are_clamped() {
        let mut w = Wheel::new(1000);
        w.insert(1, 10); // in the past
        w.insert(2, 1000); // now
        assert_eq!(run_to(&mut w, 1001), vec![(2, 1001), (1, 1001)]);
        w.insert(3, 1001 + SPAN + 50);
        let mut fired = Vec::new();
        w.advance(1001 + SPAN - 2, &mut fired);
        assert!(fired.is_empty());
        w.advance(1001 + SPAN - 1, &mut fired);
        assert_eq!(fired, vec![3], "clamped to the span");
    }

    #[test]
    fn the_last_bucket_of_the_top_level_is_a_real_bucket() {
        // Found by the property test: bucket 255 (level 3, slot 63) once doubled as the
        // "unarmed" marker, so such a timer could not be cancelled.
        let mut w = Wheel::new(0);
        let deadline = 63 << 18;
        w.insert(1, deadline);
        assert!(w.is_armed(1));
        w.insert(1, 5); // re-arm must move it, not duplicate it
        assert_eq!(w.len(), 1);
        w.cancel(1);
        assert!(w.is_empty());
    }

    #[test]
    fn cancel_and_rearm_are_exact() {
        let mut w = Wheel::new(0);
        w.insert(1, 100);
        w.insert(2, 100);
        w.cancel(1);
        w.insert(2, 200); // re-arm moves it
        assert!(!w.is_armed(1) && w.is_armed(2));
        assert_eq!(run_to(&mut w, 199), vec![]);
        assert_eq!(run_to(&mut w, 200), vec![(2, 200)]);
    }

    #[test]
    fn next_wake_never_overshoots_a_deadline() {
        let mut w = Wheel::new(5);
        assert_eq!(w.next_wake(), None);
        w.insert(1, 9);
        assert_eq!(w.next_wake(), Some(9));
        w.insert(2, 5000);
        assert_eq!(w.next_wake(), Some(9));
        w.cancel(1);
        // Only a higher level: wake at the next cascade, then again until the deadline.
        assert_eq!(w.next_wake(), Some(64));
    }

    #[test]
    fn wraps_around_u32() {
        let start = u32::MAX - 100;
        let mut w = Wheel::new(start);
        w.insert(1, start.wrapping_add(5000));
        let fired = run_to(&mut w, start.wrapping_add(5000));
        assert_eq!(fired, vec![(1, start.wrapping_add(5000))]);
    }

    #[derive(Debug, Clone)]
    enum Op {
        Insert(u32, u32),
        Cancel(u32),
        Advance(u32),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u32..40, prop_oneof![0u32..70, 0u32..5000, 0u32..300_000]).prop_map(|(id, d)| Op::Insert(id, d)),
            1 => (0u32..40).prop_map(Op::Cancel),
            3 => prop_oneof![1u32..10, 1u32..500, 1u32..20_000].prop_map(Op::Advance),
        ]
    }

    proptest! {
        #[test]
        fn matches_a_reference_model(start in any::<u32>(), ops in proptest::collection::vec(op(), 1..80)) {
            let mut w = Wheel::new(start);
            // id -> the tick it must fire at
            let mut model: BTreeMap<u32, u32> = BTreeMap::new();
            for op in ops {
                match op {
                    Op::Insert(id, offset) => {
                        let deadline = w.now().wrapping_add(offset);
                        w.insert(id, deadline);
                        model.insert(id, w.now().wrapping_add(offset.max(1)));
                    }
                    Op::Cancel(id) => {
                        w.cancel(id);
                        model.remove(&id);
                    }
                    Op::Advance(by) => {
                        let to = w.now().wrapping_add(by);
                        // Jumps bounded by next_wake must still fire everything on time.
                        while w.now() != to {
                            let wake = w.next_wake().unwrap_or(to);
                            let step_to = if wake.wrapping_sub(w.now()) < to.wrapping_sub(w.now()) { wake } else { to };
                            let mut fired = Vec::new();
                            w.advance(step_to, &mut fired);
                            for id in fired {
                                let due = model.remove(&id);
                                prop_assert!(due.is_some(), "{id} fired but was not armed");
                                let due = due.unwrap();
                                prop_assert!(due.wrapping_sub(start) <= w.now().wrapping_sub(start), "{id} fired early");
                                prop_assert_eq!(due, step_to, "{} fired late", id);
                            }
                        }
                    }
                }
                prop_assert_eq!(w.len(), model.len());
            }
        }
    }
}

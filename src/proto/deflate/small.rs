//! A DEFLATE encoder for short messages that stand alone (shared mode): every table sized to
//! the message, so compressing a 150-byte chat message touches about a kilobyte of state.
//!
//! # Why not zlib (or libdeflate) here
//!
//! Both are built for long inputs. Compressing a message on its own with zlib-rs means a reset
//! that clears a fixed 128 KiB hash table, then building the block's Huffman codes with a heap
//! over all 286 symbols; libdeflate initializes tables of the same size on every call.
//! `benches/deflate.rs` times a chat message at about 6.3 µs with either (this encoder: 3.1),
//! of which a third is that `memset` (the rest mostly code building), and in a server the
//! 128 KiB also push the connection state out of the caches. This encoder does the same work at
//! the message's scale:
//!
//! 1. **Matches** (LZ77): a hash of three bytes into a head table of the next power of two
//!    above the message (64 to 4,096 entries; only that part is cleared), chained through a
//!    table as long as the message; greedy, following at most [`SmallDeflater::new`]'s chain
//!    depth. A message's matches reach at most its own length back, so one no longer than the
//!    window the client allowed never needs a larger window (the caller checks both).
//! 2. **Codes**: Huffman code lengths from the symbols actually used (sorted, merged two queues
//!    at a time), limited to 15 bits (7 for the code-length code) the way miniz does, and made
//!    canonical (RFC 1951 §3.2.2).
//! 3. **Block**: whichever of dynamic Huffman, fixed Huffman and stored is shortest, never
//!    final (`BFINAL` 0), then the empty stored block of a sync flush whose `00 00 ff ff` tail
//!    RFC 7692 §7.2.1 removes: exactly what zlib's sync flush sends, which every client reads,
//!    including those that keep one inflater across messages.
//!
//! Inputs longer than [`SmallDeflater::MAX_INPUT`] are refused (`false`); zlib-rs compresses
//! them.

/// Bases of the length codes 257..285 (RFC 1951 §3.2.5).
const LENGTH_BASE: [u16; 29] = [
    3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 15, 17, 19, 23, 27, 31, 35, 43, 51, 59, 67, 83, 99, 115, 131,
    163, 195, 227, 258,
];
/// Extra bits of the length codes 257..285.
const LENGTH_EXTRA: [u8; 29] = [
    0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 3, 4, 4, 4, 4, 5, 5, 5, 5, 0,
];
/// Bases of the distance codes 0..29.
const DIST_BASE: [u16; 30] = [
    1, 2, 3, 4, 5, 7, 9, 13, 17, 25, 33, 49, 65, 97, 129, 193, 257, 385, 513, 769, 1025, 1537,
    2049, 3073, 4097, 6145, 8193, 12289, 16385, 24577,
];
/// Extra bits of the distance codes 0..29.
const DIST_EXTRA: [u8; 30] = [
    0, 0, 0, 0, 1, 1, 2, 2, 3, 3, 4, 4, 5, 5, 6, 6, 7, 7, 8, 8, 9, 9, 10, 10, 11, 11, 12, 12, 13,
    13,
];
/// The order in which the code-length code's lengths are sent (RFC 1951 §3.2.7).
const CL_ORDER: [usize; 19] = [
    16, 17, 18, 0, 8, 7, 9, 6, 10, 5, 11, 4, 12, 3, 13, 2, 14, 1, 15,
];

/// Literal/length symbols (0..=285; 286 and 287 never occur).
const LITLEN: usize = 286;
/// Distance symbols.
const DISTS: usize = 30;
/// End of block.
const EOB: usize = 256;
/// Shortest and longest match.
const MIN_MATCH: usize = 3;
const MAX_MATCH: usize = 258;

/// The length code (index into [`LENGTH_BASE`]) of a match of `len` bytes (3..=258).
fn length_code(len: usize) -> usize {
    debug_assert!((MIN_MATCH..=MAX_MATCH).contains(&len));
    if len == MAX_MATCH {
        return 28;
    }
    LENGTH_BASE.partition_point(|&b| usize::from(b) <= len) - 1
}

/// The distance code of a distance of `dist` bytes (1..=32768).
fn dist_code(dist: usize) -> usize {
    debug_assert!((1..=32768).contains(&dist));
    DIST_BASE.partition_point(|&b| usize::from(b) <= dist) - 1
}

/// How many bytes `data[a..]` and `data[b..]` have in common, at most `limit` (`b + limit` and
/// `a + limit` within `data`), compared eight at a time.
fn common(data: &[u8], a: usize, b: usize, limit: usize) -> usize {
    let word = |at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&data[at..at + 8]);
        u64::from_le_bytes(w)
    };
    let mut k = 0;
    while k + 8 <= limit {
        let x = word(a + k) ^ word(b + k);
        if x != 0 {
            return k + (x.trailing_zeros() / 8) as usize;
        }
        k += 8;
    }
    while k < limit && data[a + k] == data[b + k] {
        k += 1;
    }
    k
}

/// Writes bits least significant first, as DEFLATE packs them.
struct Bits<'o> {
    out: &'o mut Vec<u8>,
    acc: u64,
    n: u32,
}

impl Bits<'_> {
    /// Appends the low `count` (at most 32) bits of `value`.
    fn put(&mut self, value: u32, count: u32) {
        debug_assert!(count <= 32 && (count == 32 || value >> count == 0));
        self.acc |= u64::from(value) << self.n;
        self.n += count;
        while self.n >= 8 {
            self.out.push(self.acc as u8);
            self.acc >>= 8;
            self.n -= 8;
        }
    }

    /// Pads with zero bits to the next byte boundary.
    fn align(&mut self) {
        if self.n > 0 {
            self.out.push(self.acc as u8);
            self.acc = 0;
            self.n = 0;
        }
    }
}

/// A Huffman code: a length and a bit-reversed code (ready for [`Bits::put`]) per symbol.
struct Code<const N: usize> {
    len: [u8; N],
    bits: [u16; N],
}

impl<const N: usize> Code<N> {
    /// The canonical code for `len` (RFC 1951 §3.2.2), each code bit-reversed.
    fn canonical(len: [u8; N]) -> Self {
        // Counted with a branch, not `count[l] += 1` for every symbol: most lengths are 0,
        // and incrementing the same counter back to back serializes on it.
        let mut count = [0u16; 16];
        for &l in &len {
            if l > 0 {
                count[usize::from(l)] += 1;
            }
        }
        let mut next = [0u16; 16];
        let mut code = 0u16;
        for bits in 1..16 {
            code = (code + count[bits - 1]) << 1;
            next[bits] = code;
        }
        let mut bits = [0u16; N];
        for (s, &l) in len.iter().enumerate() {
            if l > 0 {
                let c = next[usize::from(l)];
                next[usize::from(l)] += 1;
                bits[s] = c.reverse_bits() >> (16 - u32::from(l));
            }
        }
        Self { len, bits }
    }

    /// The fixed literal/length code (RFC 1951 §3.2.6).
    fn fixed_litlen() -> Code<288> {
        let mut len = [0u8; 288];
        for (s, l) in len.iter_mut().enumerate() {
            *l = match s {
                0..=143 => 8,
                144..=255 => 9,
                256..=279 => 7,
                _ => 8,
            };
        }
        Code::canonical(len)
    }

    fn put(&self, w: &mut Bits<'_>, symbol: usize) {
        w.put(u32::from(self.bits[symbol]), u32::from(self.len[symbol]));
    }
}

/// Huffman code lengths for `freq`, at most `max_bits` long, for the symbols whose frequency is
/// not zero (the caller makes sure at least two are). The lengths are optimal unless the limit
/// cut them, then adjusted as miniz does (the longest codes folded onto the limit, the Kraft sum
/// restored by lengthening shorter ones), and handed out shortest to most frequent.
///
/// Returns the lengths and the bits the symbols take with them (the sum of frequency × length).
fn code_lengths<const N: usize>(freq: &[u32; N], max_bits: usize, t: &mut Tree) -> ([u8; N], u64) {
    let mut lens = [0u8; N];
    // Used symbols, ascending by frequency (ties by symbol: deterministic output), each packed
    // as `frequency << 9 | symbol` (frequencies stay far below 2^23: a message is at most
    // 4 KiB), which sorts faster than pairs.
    t.syms.clear();
    for (s, &f) in freq.iter().enumerate() {
        if f > 0 {
            t.syms.push(f << 9 | s as u32);
        }
    }
    let n = t.syms.len();
    let syms = &mut t.syms[..];
    syms.sort_unstable();
    let symbol = |k: u32| (k & 511) as usize;
    if n < 2 {
        if let Some(&k) = syms.first() {
            lens[symbol(k)] = 1;
            return (lens, u64::from(k >> 9));
        }
        return (lens, 0);
    }
    // Two-queue Huffman: leaves 0..n (ascending), internal nodes n..2n-1 made in ascending
    // order of weight; `parent` links each node to the one that merged it.
    t.weight.resize(2 * LITLEN, 0);
    t.parent.resize(2 * LITLEN, 0);
    t.depth.resize(2 * LITLEN, 0);
    let (weight, parent, depth) = (&mut t.weight[..], &mut t.parent[..], &mut t.depth[..]);
    for (i, &k) in syms.iter().enumerate() {
        weight[i] = k >> 9;
    }
    let (mut leaf, mut inner, mut next) = (0usize, n, n);
    // The lighter of the next leaf and the next internal node.
    let smallest = |weight: &[u32], leaf: &mut usize, inner: &mut usize, next: usize| {
        if *leaf < n && (*inner >= next || weight[*leaf] <= weight[*inner]) {
            *leaf += 1;
            *leaf - 1
        } else {
            *inner += 1;
            *inner - 1
        }
    };
    while next < 2 * n - 1 {
        let a = smallest(weight, &mut leaf, &mut inner, next);
        let b = smallest(weight, &mut leaf, &mut inner, next);
        weight[next] = weight[a] + weight[b];
        parent[a] = next as u16;
        parent[b] = next as u16;
        next += 1;
    }
    // Depths from the root down (a parent always comes after its children).
    let mut count = [0u32; 33];
    depth[2 * n - 2] = 0;
    for i in (0..2 * n - 2).rev() {
        depth[i] = depth[usize::from(parent[i])].saturating_add(1).min(32);
    }
    for &d in &depth[..n] {
        count[usize::from(d)] += 1;
    }
    // Fold lengths over the limit onto it, then restore the Kraft sum.
    for d in max_bits + 1..33 {
        count[max_bits] += count[d];
        count[d] = 0;
    }
    let mut total: u64 = (1..=max_bits)
        .map(|d| u64::from(count[d]) << (max_bits - d))
        .sum();
    while total > 1 << max_bits {
        count[max_bits] -= 1;
        for d in (1..max_bits).rev() {
            if count[d] > 0 {
                count[d] -= 1;
                count[d + 1] += 2;
                break;
            }
        }
        total -= 1;
    }
    // Shortest lengths to the most frequent symbols.
    let mut order = syms.iter().rev();
    let mut bits = 0u64;
    for (d, &c) in count.iter().enumerate().take(max_bits + 1).skip(1) {
        for _ in 0..c {
            if let Some(&k) = order.next() {
                lens[symbol(k)] = d as u8;
                bits += u64::from(k >> 9) * d as u64;
            }
        }
    }
    (lens, bits)
}

/// Scratch for [`code_lengths`], kept between messages (nothing in it needs clearing).
#[derive(Default)]
struct Tree {
    syms: Vec<u32>,
    weight: Vec<u32>,
    parent: Vec<u16>,
    depth: Vec<u8>,
}

/// One LZ77 symbol: a literal (`dist` 0) or a match.
#[derive(Clone, Copy)]
struct Token {
    /// The literal byte, or the match length.
    value: u16,
    /// The match distance; 0 for a literal.
    dist: u16,
}

/// Compresses short messages that stand alone (see the module's documentation).
pub struct SmallDeflater {
    depth: u32,
    /// A match this long ends the search.
    nice: usize,
    /// The fixed literal/length code, made once.
    fixed: Code<288>,
    head: Vec<u16>,
    prev: Vec<u16>,
    tokens: Vec<Token>,
    tree: Tree,
    /// The run-length coded code lengths of the last dynamic block (kept for its capacity).
    runs: Vec<(u8, u8)>,
}

impl core::fmt::Debug for SmallDeflater {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("SmallDeflater")
            .field("depth", &self.depth)
            .finish_non_exhaustive()
    }
}

impl core::fmt::Debug for Token {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "({}, {})", self.value, self.dist)
    }
}

impl SmallDeflater {
    /// The longest input compressed here.
    pub const MAX_INPUT: usize = 4096;

    /// A deflater at `level` (zlib's scale, 1 to 9): how many earlier places with the same
    /// three bytes are tried for each match (1 at level 1, 4 at 2, up to 128 at 9), and the
    /// match length that ends the search early (8 at level 1, 16 at 2, up to 258).
    pub fn new(level: u8) -> Self {
        let (depth, nice) = match level {
            0 | 1 => (1, 8),
            2 => (4, 16),
            3 => (8, 32),
            4 | 5 => (16, 64),
            6 => (32, 128),
            7 | 8 => (64, MAX_MATCH),
            _ => (128, MAX_MATCH),
        };
        Self {
            depth,
            nice,
            fixed: Code::<288>::fixed_litlen(),
            head: Vec::new(),
            prev: Vec::new(),
            tokens: Vec::new(),
            tree: Tree::default(),
            runs: Vec::new(),
        }
    }

    /// Compresses `payload` as one message that stands alone and appends it to `out` as RFC
    /// 7692 sends it (a non-final block and a sync flush, without the tail). Returns `false`,
    /// with `out` as it was, when `payload` is longer than [`Self::MAX_INPUT`].
    pub fn deflate(&mut self, payload: &[u8], out: &mut Vec<u8>) -> bool {
        if payload.len() > Self::MAX_INPUT {
            return false;
        }
        self.find_matches(payload);
        let mut litlen = [0u32; LITLEN];
        let mut dist = [0u32; DISTS];
        let mut extra_bits = 0u64;
        for t in &self.tokens {
            if t.dist == 0 {
                litlen[usize::from(t.value)] += 1;
            } else {
                let l = length_code(usize::from(t.value));
                let d = dist_code(usize::from(t.dist));
                litlen[257 + l] += 1;
                dist[d] += 1;
                extra_bits += u64::from(LENGTH_EXTRA[l]) + u64::from(DIST_EXTRA[d]);
            }
        }
        litlen[EOB] = 1;
        // The fixed code's lengths by range (RFC 1951 §3.2.6): 8, 9, 7, 8 bits; distances 5.
        let sum = |f: &[u32]| f.iter().map(|&c| u64::from(c)).sum::<u64>();
        let fixed_cost = 3
            + extra_bits
            + 8 * sum(&litlen[..144])
            + 9 * sum(&litlen[144..256])
            + 7 * sum(&litlen[256..280])
            + 8 * sum(&litlen[280..])
            + 5 * sum(&dist);
        // At least two codes in each dynamic code (as zlib does): an inflater may refuse a code
        // of one symbol.
        for f in [&mut litlen[..], &mut dist[..]] {
            let used = f.iter().filter(|&&c| c > 0).count();
            for c in f.iter_mut().take(2) {
                if used < 2 && *c == 0 {
                    *c = 1;
                }
            }
        }
        let (lit, lit_bits) = code_lengths(&litlen, 15, &mut self.tree);
        let (dis, dist_bits) = code_lengths(&dist, 15, &mut self.tree);
        let (lit, dis) = (Code::canonical(lit), Code::canonical(dis));
        let runs = std::mem::take(&mut self.runs);
        let header = DynamicHeader::new(&lit.len, &dis.len, runs, &mut self.tree);
        let dynamic_cost = 3 + header.cost() + extra_bits + lit_bits + dist_bits;
        let stored_cost = 3 + 7 + 32 + 8 * payload.len() as u64;

        out.reserve(payload.len() + 16);
        let mut w = Bits { out, acc: 0, n: 0 };
        if stored_cost < fixed_cost.min(dynamic_cost) {
            w.put(0, 3); // BFINAL 0, BTYPE 00
            w.align();
            let len = payload.len() as u16;
            w.put(u32::from(len), 16);
            w.put(u32::from(!len), 16);
            w.out.extend_from_slice(payload);
        } else if fixed_cost <= dynamic_cost {
            w.put(0b010, 3); // BFINAL 0, BTYPE 01
            self.put_tokens(&mut w, &self.fixed, None);
        } else {
            w.put(0b100, 3); // BFINAL 0, BTYPE 10
            header.put(&mut w);
            self.put_tokens(&mut w, &lit, Some(&dis));
        }
        // The sync flush: an empty stored block, its length and complement (the tail) left out.
        w.put(0, 3);
        w.align();
        self.runs = header.runs;
        true
    }

    /// Greedy LZ77 over `data` into `self.tokens`.
    fn find_matches(&mut self, data: &[u8]) {
        self.tokens.clear();
        let n = data.len();
        let size = n.next_power_of_two().clamp(64, Self::MAX_INPUT);
        let mask = size - 1;
        if self.head.len() < size {
            self.head.resize(size, 0);
        }
        self.head[..size].fill(0);
        if self.prev.len() < n {
            self.prev.resize(n, 0);
        }
        let hash = |i: usize| -> usize {
            let v = u32::from(data[i]) | u32::from(data[i + 1]) << 8 | u32::from(data[i + 2]) << 16;
            (v.wrapping_mul(0x9E37_79B1) >> 16) as usize & mask
        };
        // Positions are stored plus one (0: none).
        let insert = |head: &mut [u16], prev: &mut [u16], i: usize| {
            if i + MIN_MATCH <= n {
                let h = hash(i);
                prev[i] = head[h];
                head[h] = i as u16 + 1;
            }
        };
        let mut i = 0;
        while i < n {
            let mut best = (0usize, 0usize);
            if i + MIN_MATCH <= n {
                let limit = (n - i).min(MAX_MATCH);
                let mut candidate = self.head[hash(i)];
                let mut tries = self.depth;
                while candidate != 0 && tries > 0 {
                    let j = usize::from(candidate - 1);
                    // Only a candidate that also matches at the best length so far can beat it.
                    if data[j + best.0] == data[i + best.0] {
                        let len = common(data, j, i, limit);
                        if len > best.0 {
                            best = (len, i - j);
                            if len >= self.nice || len == limit {
                                break; // (and `best.0 < limit` for the check above)
                            }
                        }
                    }
                    candidate = self.prev[j];
                    tries -= 1;
                }
            }
            if best.0 >= MIN_MATCH {
                self.tokens.push(Token {
                    value: best.0 as u16,
                    dist: best.1 as u16,
                });
                for k in i..i + best.0 {
                    insert(&mut self.head, &mut self.prev, k);
                }
                i += best.0;
            } else {
                self.tokens.push(Token {
                    value: u16::from(data[i]),
                    dist: 0,
                });
                insert(&mut self.head, &mut self.prev, i);
                i += 1;
            }
        }
    }

    /// The block's symbols and its end, with `lit` (and `dis`; `None`: the fixed 5-bit codes).
    fn put_tokens<const L: usize>(
        &self,
        w: &mut Bits<'_>,
        lit: &Code<L>,
        dis: Option<&Code<DISTS>>,
    ) {
        for t in &self.tokens {
            if t.dist == 0 {
                lit.put(w, usize::from(t.value));
                continue;
            }
            let (len, dist) = (usize::from(t.value), usize::from(t.dist));
            let l = length_code(len);
            lit.put(w, 257 + l);
            w.put(
                (len - usize::from(LENGTH_BASE[l])) as u32,
                u32::from(LENGTH_EXTRA[l]),
            );
            let d = dist_code(dist);
            match dis {
                Some(c) => c.put(w, d),
                None => w.put(u32::from((d as u8).reverse_bits() >> 3), 5),
            }
            w.put(
                (dist - usize::from(DIST_BASE[d])) as u32,
                u32::from(DIST_EXTRA[d]),
            );
        }
        lit.put(w, EOB);
    }
}

/// The code lengths of a dynamic block, run-length coded (RFC 1951 §3.2.7), with their code.
struct DynamicHeader {
    hlit: usize,
    hdist: usize,
    hclen: usize,
    /// (code-length symbol 0..=18, its extra bits' value).
    runs: Vec<(u8, u8)>,
    code: Code<19>,
}

impl DynamicHeader {
    /// The header for these code lengths, its runs written into `runs` (cleared first).
    fn new(
        lit: &[u8; LITLEN],
        dist: &[u8; DISTS],
        mut runs: Vec<(u8, u8)>,
        tree: &mut Tree,
    ) -> Self {
        let hlit = 257
            + lit[257..LITLEN]
                .iter()
                .rposition(|&l| l > 0)
                .map_or(0, |p| p + 1);
        let hdist = 1 + dist.iter().rposition(|&l| l > 0).unwrap_or(0);
        let mut all = [0u8; LITLEN + DISTS];
        all[..hlit].copy_from_slice(&lit[..hlit]);
        all[hlit..hlit + hdist].copy_from_slice(&dist[..hdist]);
        let lengths = &all[..hlit + hdist];
        runs.clear();
        let mut i = 0;
        while i < lengths.len() {
            let l = lengths[i];
            let run = lengths[i..].iter().take_while(|&&x| x == l).count();
            if l == 0 && run >= 11 {
                let r = run.min(138);
                runs.push((18, (r - 11) as u8));
                i += r;
            } else if l == 0 && run >= 3 {
                runs.push((17, (run - 3) as u8));
                i += run;
            } else if l > 0 && run >= 4 {
                // The length itself, then repeats of it, 3 to 6 at a time.
                runs.push((l, 0));
                let mut left = run - 1;
                while left >= 3 {
                    let r = left.min(6);
                    runs.push((16, (r - 3) as u8));
                    left -= r;
                }
                for _ in 0..left {
                    runs.push((l, 0));
                }
                i += run;
            } else {
                runs.push((l, 0));
                i += 1;
            }
        }
        let mut freq = [0u32; 19];
        for &(s, _) in &runs {
            freq[usize::from(s)] += 1;
        }
        let used = freq.iter().filter(|&&c| c > 0).count();
        if used < 2 {
            // A second code, never used: an inflater may refuse a code of one symbol.
            let spare = if freq[0] == 0 { 0 } else { 1 };
            freq[spare] = 1;
        }
        let code = Code::canonical(code_lengths(&freq, 7, tree).0);
        let hclen = 4.max(1 + CL_ORDER.iter().rposition(|&s| code.len[s] > 0).unwrap_or(0));
        Self {
            hlit,
            hdist,
            hclen,
            runs,
            code,
        }
    }

    /// Its size in bits (without the block's 3-bit header).
    fn cost(&self) -> u64 {
        let runs: u64 = self
            .runs
            .iter()
            .map(|&(s, _)| {
                u64::from(self.code.len[usize::from(s)])
                    + match s {
                        16 => 2,
                        17 => 3,
                        18 => 7,
                        _ => 0,
                    }
            })
            .sum();
        5 + 5 + 4 + 3 * self.hclen as u64 + runs
    }

    fn put(&self, w: &mut Bits<'_>) {
        w.put((self.hlit - 257) as u32, 5);
        w.put((self.hdist - 1) as u32, 5);
        w.put((self.hclen - 4) as u32, 4);
        for &s in &CL_ORDER[..self.hclen] {
            w.put(u32::from(self.code.len[s]), 3);
        }
        for &(s, extra) in &self.runs {
            self.code.put(w, usize::from(s));
            match s {
                16 => w.put(u32::from(extra), 2),
                17 => w.put(u32::from(extra), 3),
                18 => w.put(u32::from(extra), 7),
                _ => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::proto::deflate::test_data::chat;
    use crate::proto::deflate::{Deflater, Inflater};

    fn noise(len: usize, seed: u32) -> Vec<u8> {
        let mut x = seed | 1;
        (0..len)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 17;
                x ^= x << 5;
                x as u8
            })
            .collect()
    }

    /// A streaming client's inflater, never reset, reads each message.
    fn reaches_a_client(level: u8, msgs: &[Vec<u8>]) -> usize {
        let mut d = SmallDeflater::new(level);
        let mut client = Inflater::new(15);
        let mut total = 0;
        for m in msgs {
            let mut packed = vec![0xaa];
            assert!(d.deflate(m, &mut packed), "{} bytes", m.len());
            assert_eq!(packed[0], 0xaa, "appended");
            let packed = &packed[1..];
            assert_eq!(packed[0] & 1, 0, "never a final block");
            let mut out = Vec::new();
            client.inflate(packed, m.len(), &mut out).unwrap();
            assert_eq!(out, *m, "{} bytes at level {level}", m.len());
            total += packed.len();
        }
        total
    }

    #[test]
    fn every_length_and_kind_of_message_reaches_a_streaming_client() {
        let mut msgs: Vec<Vec<u8>> = (0..400).map(|n| chat(8)[..n].to_vec()).collect();
        for len in [0, 1, 2, 3, 64, 257, 258, 259, 1000, 4095, 4096] {
            msgs.push(noise(len, len as u32));
            msgs.push(chat(80)[..len].to_vec());
            msgs.push(vec![b'a'; len]);
            msgs.push((0..len).map(|i| (i % 7) as u8).collect());
        }
        for level in 1..=9 {
            reaches_a_client(level, &msgs);
        }
    }

    #[test]
    fn it_compresses_chat_about_as_well_as_zlib() {
        let msgs: Vec<Vec<u8>> = (1..40).map(|k| chat(1 + k % 3)).collect();
        let plain: usize = msgs.iter().map(Vec::len).sum();
        let ours = reaches_a_client(2, &msgs);
        let mut z = Deflater::new(2, 15, true);
        let theirs: usize = msgs
            .iter()
            .map(|m| {
                let mut out = Vec::new();
                z.deflate(m, &mut out);
                out.len()
            })
            .sum();
        assert!(ours < plain * 85 / 100, "{ours} of {plain}");
        assert!(
            ours <= theirs * 105 / 100,
            "{ours} against zlib-rs' {theirs}"
        );
    }

    #[test]
    fn incompressible_bytes_go_stored_and_repeats_shrink() {
        let m = noise(1000, 7);
        let mut out = Vec::new();
        assert!(SmallDeflater::new(2).deflate(&m, &mut out));
        assert!(out.len() <= m.len() + 6, "{}", out.len());
        let m = vec![b'x'; 4096];
        out.clear();
        assert!(SmallDeflater::new(2).deflate(&m, &mut out));
        assert!(out.len() < 64, "{}", out.len());
    }

    #[test]
    fn long_inputs_are_refused_untouched() {
        let mut out = vec![1, 2];
        assert!(!SmallDeflater::new(2).deflate(&vec![0; 4097], &mut out));
        assert_eq!(out, [1, 2]);
    }

    #[test]
    fn matches_reach_no_further_back_than_the_message() {
        // A 256-byte message read by an inflater with a 256-byte window (8 bits, as zlib
        // rounds it: 9), and a 512-byte one with 9 bits.
        for (len, bits) in [(256, 8), (512, 9)] {
            let m: Vec<u8> = (0..len).map(|i| (i % 200) as u8).collect();
            let mut packed = Vec::new();
            assert!(SmallDeflater::new(9).deflate(&m, &mut packed));
            let mut out = Vec::new();
            Inflater::new(bits).inflate(&packed, len, &mut out).unwrap();
            assert_eq!(out, m);
        }
    }

    #[test]
    fn code_lengths_respect_the_limit_and_are_complete() {
        // Fibonacci frequencies make the deepest optimal tree.
        let mut freq = [0u32; 19];
        let (mut a, mut b) = (1u32, 1u32);
        for f in freq.iter_mut() {
            *f = a;
            (a, b) = (b, a + b);
        }
        let (lens, _) = code_lengths(&freq, 7, &mut Tree::default());
        assert!(lens.iter().all(|&l| (1..=7).contains(&l)), "{lens:?}");
        let kraft: f64 = lens.iter().map(|&l| 0.5f64.powi(i32::from(l))).sum();
        assert!((kraft - 1.0).abs() < 1e-9, "{kraft}");
        // More frequent, never longer.
        for i in 1..19 {
            assert!(lens[i] <= lens[i - 1], "{lens:?}");
        }
        // The literal/length code's 15-bit limit, with 24 symbols in a Fibonacci series (an
        // optimal tree 23 deep) among 286.
        let mut freq = [0u32; LITLEN];
        let (mut a, mut b) = (1u32, 1u32);
        for f in freq.iter_mut().skip(100).take(24) {
            *f = a;
            (a, b) = (b, a + b);
        }
        let (lens, _) = code_lengths(&freq, 15, &mut Tree::default());
        let used: Vec<u8> = lens.iter().copied().filter(|&l| l > 0).collect();
        assert_eq!(used.len(), 24);
        assert!(used.iter().all(|&l| l <= 15), "{used:?}");
        let kraft: f64 = used.iter().map(|&l| 0.5f64.powi(i32::from(l))).sum();
        assert!((kraft - 1.0).abs() < 1e-9, "{kraft}");
    }

    proptest::proptest! {
        #[test]
        fn any_short_message_reaches_a_streaming_client(
            a in proptest::collection::vec(0u8..6, 0..SmallDeflater::MAX_INPUT),
            b in proptest::collection::vec(proptest::num::u8::ANY, 0..600),
            level in 1u8..=9,
        ) {
            reaches_a_client(level, &[a, b]);
        }
    }
}

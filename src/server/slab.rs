//! Connection slots with generations: a slot index names a connection in io_uring `user_data`,
//! and the generation tells a late completion of a closed connection from one of the slot's
//! new occupant.

/// Slots per chunk. A chunk is allocated whole and never moved, so growing the slab never
/// copies the slots already there: a doubling `Vec` would, and the allocator may keep the
/// abandoned copies resident (measured: that doubled the memory per idle connection).
const CHUNK: usize = 1024;

/// A growable array of slots with a free list. Indexes are stable while occupied.
#[derive(Debug)]
pub(crate) struct Slab<T> {
    chunks: Vec<Vec<Entry<T>>>,
    /// Slots ever created (the next new index).
    created: usize,
    free: Vec<u32>,
    len: usize,
}

#[derive(Debug)]
struct Entry<T> {
    generation: u32,
    value: Option<T>,
}

impl<T> Slab<T> {
    pub(crate) fn new() -> Self {
        Slab {
            chunks: Vec::new(),
            created: 0,
            free: Vec::new(),
            len: 0,
        }
    }

    /// Occupied slots.
    pub(crate) fn len(&self) -> usize {
        self.len
    }

    fn entry(&mut self, slot: u32) -> Option<&mut Entry<T>> {
        let slot = slot as usize;
        self.chunks.get_mut(slot / CHUNK)?.get_mut(slot % CHUNK)
    }

    /// Stores `value`; returns `(slot, generation)`, or `None` past `max` slots.
    pub(crate) fn insert(&mut self, value: T, max: u32) -> Option<(u32, u32)> {
        let slot = match self.free.pop() {
            Some(slot) => slot,
            None if (self.created as u64) < u64::from(max) => {
                if self.created % CHUNK == 0 {
                    self.chunks.push(Vec::with_capacity(CHUNK));
                }
                self.chunks.last_mut()?.push(Entry {
                    generation: 0,
                    value: None,
                });
                self.created += 1;
                (self.created - 1) as u32
            }
            None => return None,
        };
        let entry = self.entry(slot)?;
        // Never 0: tags of operations that belong to no connection use generation 0.
        entry.generation = entry.generation.wrapping_add(1).max(1);
        entry.value = Some(value);
        let generation = entry.generation;
        self.len += 1;
        Some((slot, generation))
    }

    /// The value in `slot` if it is still of `generation`.
    pub(crate) fn get_mut(&mut self, slot: u32, generation: u32) -> Option<&mut T> {
        let entry = self.entry(slot)?;
        if entry.generation != generation {
            return None;
        }
        entry.value.as_mut()
    }

    /// The generation of `slot` if it is occupied.
    pub(crate) fn generation_of(&mut self, slot: u32) -> Option<u32> {
        let entry = self.entry(slot)?;
        entry.value.as_ref().map(|_| entry.generation)
    }

    /// Frees `slot` if it is of `generation`; returns its value.
    pub(crate) fn remove(&mut self, slot: u32, generation: u32) -> Option<T> {
        let entry = self.entry(slot)?;
        if entry.generation != generation {
            return None;
        }
        let value = entry.value.take()?;
        self.free.push(slot);
        self.len -= 1;
        Some(value)
    }

    /// Every occupied `(slot, generation)`.
    pub(crate) fn keys(&self) -> Vec<(u32, u32)> {
        let all = self.chunks.iter().flatten().enumerate();
        all.filter(|(_, e)| e.value.is_some())
            .map(|(i, e)| (i as u32, e.generation))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generations_tell_old_from_new() {
        let mut s = Slab::new();
        let (a, ga) = s.insert("a", 10).unwrap();
        assert_eq!(s.remove(a, ga), Some("a"));
        let (b, gb) = s.insert("b", 10).unwrap();
        assert_eq!(a, b, "the slot is reused");
        assert_ne!(ga, gb);
        assert!(
            s.get_mut(a, ga).is_none(),
            "the old generation finds nothing"
        );
        assert_eq!(s.get_mut(b, gb), Some(&mut "b"));
        assert_eq!(s.remove(a, ga), None);
        assert_eq!(s.len(), 1);
    }

    #[test]
    fn max_bounds_the_slots() {
        let mut s = Slab::new();
        assert!(s.insert(1, 2).is_some());
        assert!(s.insert(2, 2).is_some());
        assert!(s.insert(3, 2).is_none());
        assert_eq!(s.keys().len(), 2);
    }

    #[test]
    fn slots_beyond_one_chunk_keep_their_values() {
        let mut s = Slab::new();
        let keys: Vec<_> = (0..3 * CHUNK + 5)
            .map(|i| s.insert(i, u32::MAX).unwrap())
            .collect();
        for (i, &(slot, generation)) in keys.iter().enumerate() {
            assert_eq!(slot as usize, i);
            assert_eq!(s.get_mut(slot, generation).copied(), Some(i));
        }
        assert_eq!(s.keys().len(), 3 * CHUNK + 5);
    }
}

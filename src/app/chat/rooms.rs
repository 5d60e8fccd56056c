//! The rooms every worker shares: members online and the next sequence number of each room.
//!
//! Touched with a lock only when a room is joined for the first time or left by its last
//! member; a message costs one atomic increment (its sequence number), no lock.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

/// One room's shared counters.
#[derive(Debug, Default)]
pub struct Room {
    online: AtomicI64,
    seq: AtomicU64,
    /// When presence was last broadcast (ms on the chat's monotonic clock, 0: never): at most
    /// one a second per room.
    presence_at: AtomicU64,
    /// A change was not broadcast (within a second of the last): the presence task owes one.
    presence_owed: AtomicBool,
    /// Who is in the room on this server: per user (or, without a token, per connection), its
    /// display name and connections. Locked on joins and leaves only.
    members: Mutex<BTreeMap<Box<str>, Present>>,
}

/// One member of a room, as presence lists show it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Present {
    /// The display name when it joined.
    pub name: Option<Box<str>>,
    /// Its connections in the room (on this server).
    pub connections: u32,
}

impl Room {
    /// Members online now, on every worker of this server.
    pub fn online(&self) -> i64 {
        self.online.load(Ordering::Relaxed)
    }

    /// The next sequence number (1, 2, ...): unique and increasing per room.
    pub fn next_seq(&self) -> u64 {
        self.seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// `member` (a user id, or a connection's id) has one more connection in the room: its
    /// connections here now (1: the member joined).
    pub fn add_member(&self, member: &str, name: Option<&str>) -> u32 {
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        let present = members.entry(member.into()).or_insert_with(|| Present {
            name: name.map(Box::from),
            connections: 0,
        });
        present.connections += 1;
        present.connections
    }

    /// `member` has one connection fewer in the room: its connections here now (0: it left),
    /// or `None` if it had none.
    pub fn remove_member(&self, member: &str) -> Option<u32> {
        let mut members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        let present = members.get_mut(member)?;
        present.connections -= 1;
        let left = present.connections;
        if left == 0 {
            members.remove(member);
        }
        Some(left)
    }

    /// The members (by user or connection id, in order), at most `max`; and whether there
    /// were more.
    pub fn members(&self, max: usize) -> (Vec<(Box<str>, Present)>, bool) {
        let members = self.members.lock().unwrap_or_else(|p| p.into_inner());
        let list = members
            .iter()
            .take(max)
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        (list, members.len() > max)
    }

    /// Whether a presence update may be broadcast at `now_ms` (one a second per room; the
    /// online count also rides on every message). When not, the update is owed: [`Rooms::owed`]
    /// hands the room out once it is due, so the last change is always told.
    pub fn presence_due(&self, now_ms: u64) -> bool {
        let last = self.presence_at.load(Ordering::Relaxed);
        let due = (last == 0 || now_ms.saturating_sub(last) >= 1000)
            && self
                .presence_at
                .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
                .is_ok();
        self.presence_owed.store(!due, Ordering::Relaxed);
        due
    }
}

/// The rooms of a server.
#[derive(Debug, Default)]
pub struct Rooms {
    rooms: Mutex<HashMap<Box<str>, Arc<Room>>>,
}

impl Rooms {
    /// A member joins `name`: the room (created if new), its online count now.
    pub fn join(&self, name: &str) -> Arc<Room> {
        let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        let room = rooms.entry(name.into()).or_default().clone();
        room.online.fetch_add(1, Ordering::Relaxed);
        room
    }

    /// A member leaves `name`; the room is forgotten with its last member (its sequence starts
    /// again if it is joined later).
    pub fn leave(&self, name: &str, room: &Arc<Room>) {
        if room.online.fetch_sub(1, Ordering::Relaxed) == 1 {
            let mut rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
            // Joined again meanwhile: keep it.
            if room.online() == 0 && rooms.get(name).is_some_and(|r| Arc::ptr_eq(r, room)) {
                rooms.remove(name);
            }
        }
    }

    /// Rooms owed a presence update that is due at `now_ms` (each handed out once).
    pub fn owed(&self, now_ms: u64) -> Vec<(Box<str>, Arc<Room>)> {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms
            .iter()
            .filter(|(_, room)| {
                room.presence_owed.load(Ordering::Relaxed) && room.presence_due(now_ms)
            })
            .map(|(name, room)| (name.clone(), room.clone()))
            .collect()
    }

    /// The room `name`, if it has members.
    pub fn get(&self, name: &str) -> Option<Arc<Room>> {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms.get(name).cloned()
    }

    /// Members online in `name` now (0 for a room nobody is in).
    pub fn online_in(&self, name: &str) -> i64 {
        let rooms = self.rooms.lock().unwrap_or_else(|p| p.into_inner());
        rooms.get(name).map_or(0, |r| r.online())
    }

    /// Rooms with members.
    pub fn len(&self) -> usize {
        self.rooms.lock().unwrap_or_else(|p| p.into_inner()).len()
    }

    /// Whether no room has members.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod member_tests {
    use super::*;

    #[test]
    fn members_are_counted_per_user_and_listed_in_order() {
        let room = Room::default();
        assert_eq!(
            room.add_member("bob", Some("Bob")),
            1,
            "bob's first connection"
        );
        assert_eq!(room.add_member("bob", Some("Bob")), 2, "his second");
        assert_eq!(room.add_member("alice", None), 1);
        let (list, more) = room.members(10);
        assert!(!more);
        let names: Vec<(&str, u32)> = list.iter().map(|(k, p)| (&**k, p.connections)).collect();
        assert_eq!(names, [("alice", 1), ("bob", 2)]);
        assert_eq!(room.members(1), (vec![list[0].clone()], true), "bounded");
        assert_eq!(room.remove_member("bob"), Some(1));
        assert_eq!(room.remove_member("bob"), Some(0), "his last");
        assert_eq!(room.remove_member("bob"), None, "gone");
        assert_eq!(room.members(10).0.len(), 1);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn online_counts_and_sequences() {
        let rooms = Rooms::default();
        let a = rooms.join("a");
        let a2 = rooms.join("a");
        assert!(Arc::ptr_eq(&a, &a2));
        assert_eq!(a.online(), 2);
        assert_eq!((a.next_seq(), a.next_seq()), (1, 2));
        rooms.leave("a", &a2);
        assert_eq!((a.online(), rooms.len()), (1, 1));
        rooms.leave("a", &a);
        assert!(rooms.is_empty(), "forgotten with its last member");
        assert_eq!(rooms.join("a").next_seq(), 1);
    }

    #[test]
    fn presence_at_most_once_a_second() {
        let room = Room::default();
        assert!(room.presence_due(1), "the first is due at once");
        assert!(room.presence_due(5_000));
        assert!(!room.presence_due(5_500));
        assert!(room.presence_due(6_000));
    }

    #[test]
    fn a_suppressed_presence_update_is_owed_until_due() {
        let rooms = Rooms::default();
        let a = rooms.join("a");
        let _b = rooms.join("b");
        assert!(a.presence_due(10_000));
        assert!(!a.presence_due(10_200), "suppressed");
        assert!(rooms.owed(10_500).is_empty(), "not due yet");
        let owed = rooms.owed(11_000);
        assert_eq!(owed.len(), 1);
        assert_eq!(&*owed[0].0, "a");
        assert!(rooms.owed(12_500).is_empty(), "handed out once");
    }
}

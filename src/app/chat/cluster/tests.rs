//! The cluster sequencer's unit tests: a home driven by hand (`Recorder`), log events made up.

use super::*;
use crate::app::chat::protocol::MessageEvent;
use crate::app::chat::sequencer::Outgoing;
use crate::server::LogUnavailable;
use crate::server::home::recorder::{Did, Recorder};
use serde_json::Value;

const ALICE: ConnId = ConnId {
    worker: 1,
    slot: 7,
    generation: 1,
};

struct Setup {
    seq: ClusterSequencer,
    rec: Recorder,
    cfg: ChatConfig,
    epochs: Arc<Epochs>,
    rooms: Rooms,
}

fn setup() -> Setup {
    Setup {
        seq: ClusterSequencer::default(),
        rec: Recorder::new("r", true),
        cfg: ChatConfig::default(),
        epochs: Arc::new(Epochs::new("local".into())),
        rooms: Rooms::default(),
    }
}

fn body(text: &str) -> Bytes {
    let event = MessageEvent {
        room: "r",
        from: "n:0.1.1",
        name: None,
        ts: 1,
        seq: 0,
        offset: None,
        text,
        online: None,
        id: None,
        user: None,
        data: None,
    };
    Bytes::from(event.body())
}

fn entry(offset: u64) -> LogEntry {
    LogEntry {
        offset,
        payload: body(&format!("m{offset}")),
    }
}

impl Setup {
    fn event(&mut self, event: LogEvent) -> Vec<Did> {
        let Setup {
            seq,
            rec,
            cfg,
            epochs,
            rooms,
        } = self;
        rec.with(ConnId::NONE, |home| {
            seq.log_event(home, event, cfg, epochs, rooms)
        });
        rec.take()
    }

    fn live(&mut self, epoch: &str, offset: u64) -> Vec<Did> {
        self.event(LogEvent::Live {
            epoch: Arc::from(epoch),
            entries: vec![entry(offset)],
        })
    }

    fn request(&mut self, from: ConnId, req: HomeReq) -> Vec<Did> {
        let Setup {
            seq,
            rec,
            cfg,
            epochs,
            ..
        } = self;
        rec.with(from, |home| seq.request(home, req, cfg, epochs));
        rec.take()
    }

    fn answer(&mut self, tag: u64, epoch: &str, last: u64, offsets: &[u64]) -> Vec<Did> {
        let read = LogRead {
            epoch: Arc::from(epoch),
            last,
            entries: offsets.iter().map(|&o| entry(o)).collect(),
        };
        self.event(LogEvent::Range {
            tag,
            result: Ok(read),
        })
    }
}

/// The offsets of published messages (and `epoch` events as 0).
fn published(did: &[Did]) -> Vec<u64> {
    let offset = |text: &String| {
        let v: Value = serde_json::from_str(text).unwrap();
        v["offset"].as_u64().unwrap()
    };
    did.iter()
        .flat_map(|d| match d {
            Did::Publish(text) => vec![offset(text)],
            Did::Run(texts) => texts.iter().map(offset).collect(),
            _ => Vec::new(),
        })
        .collect()
}

fn reads(did: &[Did]) -> Vec<(LogRange, u64)> {
    did.iter()
        .filter_map(|d| match d {
            Did::Read(range, _, tag) => Some((*range, *tag)),
            _ => None,
        })
        .collect()
}

/// A room whose tail was read (empty log at `last`): live entries follow.
fn started(s: &mut Setup, last: u64) {
    let did = s.live("e1", last + 1);
    assert_eq!(
        reads(&did),
        [(LogRange::Tail, 1)],
        "nothing known: the tail"
    );
    assert!(published(&did).is_empty(), "held until the tail is read");
    let did = s.answer(1, "e1", last, &[]);
    assert_eq!(published(&did), [last + 1], "the held one follows the tail");
}

#[test]
fn live_entries_go_out_in_order_once_each_and_a_gap_is_read() {
    let mut s = setup();
    started(&mut s, 0);
    assert_eq!(published(&s.live("e1", 2)), [2]);
    assert!(s.live("e1", 2).is_empty(), "a duplicate");
    assert!(s.live("e1", 1).is_empty(), "an old one");
    // 3 and 4 are missed: 5 is held and the gap read.
    let did = s.live("e1", 5);
    assert!(published(&did).is_empty());
    assert_eq!(reads(&did), [(LogRange::After(2), 2)]);
    assert!(s.live("e1", 6).is_empty(), "held too; one read at a time");
    let did = s.answer(2, "e1", 6, &[3, 4, 5, 6]);
    assert_eq!(published(&did), [3, 4, 5, 6], "in order, once each");
    assert_eq!(published(&s.live("e1", 7)), [7]);
    assert!(s.seq.duplicates >= 2);
}

#[test]
fn entries_the_log_no_longer_keeps_are_skipped_and_a_cut_answer_reads_on() {
    let mut s = setup();
    started(&mut s, 10);
    let did = s.live("e1", 20);
    assert_eq!(reads(&did), [(LogRange::After(11), 2)]);
    // The log keeps 15.. only, and answers 2 at a time.
    let did = s.answer(2, "e1", 20, &[15, 16]);
    assert_eq!(published(&did), [15, 16]);
    assert_eq!(reads(&did), [(LogRange::After(16), 3)], "read on");
    let did = s.answer(3, "e1", 20, &[17, 18, 19, 20]);
    assert_eq!(published(&did), [17, 18, 19, 20]);
    assert!(reads(&did).is_empty());
    // A stale answer (a tag given up on) changes nothing.
    assert!(s.answer(2, "e1", 20, &[21]).is_empty());
}

#[test]
fn a_resync_during_a_read_reads_again_after_it() {
    let mut s = setup();
    started(&mut s, 0);
    let did = s.live("e1", 3);
    assert_eq!(reads(&did), [(LogRange::After(1), 2)]);
    assert!(s.event(LogEvent::Resync).is_empty(), "one read at a time");
    let did = s.event(LogEvent::Range {
        tag: 2,
        result: Err(LogUnavailable("session lost".into())),
    });
    assert_eq!(
        reads(&did),
        [(LogRange::After(1), 3)],
        "read again for the resync"
    );
    let did = s.answer(3, "e1", 3, &[2, 3]);
    assert_eq!(published(&did), [2, 3]);
}

#[test]
fn an_answer_from_another_epoch_is_read_again_from_its_start() {
    let mut s = setup();
    started(&mut s, 0);
    assert!(s.event(LogEvent::Resync).len() == 1, "a read after 1");
    // Redis came back empty and another server already appended 1..3 in epoch e2: the read
    // after offset 1 is not a continuation.
    let did = s.answer(2, "e2", 3, &[2, 3]);
    assert_eq!(
        did[0],
        Did::Publish(protocol::epoch("r", "e2")),
        "told first"
    );
    assert_eq!(
        reads(&did),
        [(LogRange::After(0), 3)],
        "the new epoch from its start"
    );
    assert_eq!(published(&s.answer(3, "e2", 3, &[1, 2, 3])), [1, 2, 3]);
}

#[test]
fn a_read_made_before_the_epoch_changed_is_read_again() {
    let mut s = setup();
    started(&mut s, 0);
    let did = s.live("e1", 3);
    assert_eq!(reads(&did), [(LogRange::After(1), 2)]);
    // The new epoch's first entry comes live while that read is on its way.
    let did = s.live("e2", 1);
    assert_eq!(published(&did), [0, 1], "announced, then delivered");
    // The answer (in e2, after 1) was asked relative to e1: read again.
    let did = s.answer(2, "e2", 5, &[2, 3, 4, 5]);
    assert!(published(&did).is_empty(), "{did:?}");
    assert_eq!(reads(&did), [(LogRange::After(1), 3)]);
    assert_eq!(
        published(&s.answer(3, "e2", 5, &[2, 3, 4, 5])),
        [2, 3, 4, 5]
    );
}

#[test]
fn members_joined_blind_get_what_came_after_they_joined() {
    let mut s = setup();
    let room = s.rooms.join("r");
    s.request(ALICE, HomeReq::Join { room, since: None });
    let did = s.event(LogEvent::Range {
        tag: 1,
        result: Err(LogUnavailable("down".into())),
    });
    assert!(
        did.iter().any(|d| matches!(d, Did::Join(..))),
        "answered blind"
    );
    // Redis is back: 5 comes live (4 before it were appended before the join).
    let did = s.live("e1", 5);
    assert_eq!(reads(&did), [(LogRange::Tail, 2)]);
    let did = s.answer(2, "e1", 5, &[1, 2, 3, 4, 5]);
    assert_eq!(
        published(&did),
        [0, 5],
        "the epoch told, then what came after the join"
    );
}

#[test]
fn another_epoch_is_announced_and_offsets_start_again() {
    let mut s = setup();
    started(&mut s, 0);
    let did = s.live("e2", 1);
    assert_eq!(
        did[0],
        Did::Publish(protocol::epoch("r", "e2")),
        "told first"
    );
    assert_eq!(published(&did), [0, 1]);
    assert_eq!(published(&s.live("e2", 2)), [2]);
}

#[test]
fn a_join_waits_for_the_log_and_gets_what_it_missed() {
    let mut s = setup();
    let room = s.rooms.join("r");
    let did = s.request(
        ALICE,
        HomeReq::Join {
            room: room.clone(),
            since: Some(("e1".into(), 3)),
        },
    );
    assert_eq!(reads(&did), [(LogRange::Tail, 1)]);
    assert!(!did.iter().any(|d| matches!(d, Did::Join(..))), "waits");
    let did = s.answer(1, "e1", 6, &[2, 3, 4, 5, 6]);
    let Some(Did::Join(conn, preamble)) = did.iter().find(|d| matches!(d, Did::Join(..))) else {
        panic!("joined: {did:?}");
    };
    assert_eq!(*conn, ALICE);
    let joined: Value = serde_json::from_str(&preamble[0]).unwrap();
    assert_eq!(
        (&joined["recovered"], &joined["offset"], &joined["epoch"]),
        (&Value::from(true), &Value::from(6), &Value::from("e1"))
    );
    let missed: Vec<u64> = preamble[1..]
        .iter()
        .map(|t| {
            serde_json::from_str::<Value>(t).unwrap()["offset"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(missed, [4, 5, 6]);
    // The bridge stops receiving the room: the next join reads what followed first.
    assert!(s.event(LogEvent::Unsubscribed).is_empty());
    let did = s.request(
        ALICE,
        HomeReq::Join {
            room,
            since: Some(("e1".into(), 6)),
        },
    );
    assert_eq!(reads(&did), [(LogRange::After(6), 2)]);
}

#[test]
fn a_leave_cancels_a_waiting_join_and_a_failed_read_still_answers() {
    let mut s = setup();
    let room = s.rooms.join("r");
    let bob = ConnId { slot: 8, ..ALICE };
    for who in [ALICE, bob] {
        let since = Some(("e1".into(), 1));
        s.request(
            who,
            HomeReq::Join {
                room: room.clone(),
                since,
            },
        );
    }
    let did = s.request(ALICE, HomeReq::Leave { online: 1 });
    assert_eq!(did[0], Did::Leave(ALICE));
    let did = s.event(LogEvent::Range {
        tag: 1,
        result: Err(LogUnavailable("down".into())),
    });
    let joins: Vec<&Did> = did.iter().filter(|d| matches!(d, Did::Join(..))).collect();
    assert_eq!(joins.len(), 1, "only bob: {did:?}");
    let Did::Join(conn, preamble) = joins[0] else {
        unreachable!()
    };
    assert_eq!(*conn, bob);
    let joined: Value = serde_json::from_str(&preamble[0]).unwrap();
    assert_eq!(joined["recovered"], false, "nothing known: not claimed");
}

#[test]
fn a_message_is_appended_and_a_refusal_goes_back_to_its_sender_with_its_id() {
    let mut s = setup();
    let room = s.rooms.join("r");
    let did = s.request(
        ALICE,
        HomeReq::Send(Outgoing {
            room: Some(room),
            from: "n:1.7.1".into(),
            name: None,
            ts: 5,
            text: "hi".into(),
            id: Some("k1".into()),
            user: None,
            data: None,
            reply: None,
        }),
    );
    let [Did::Append(from, key, payload)] = &did[..] else {
        panic!("{did:?}");
    };
    assert_eq!((*from, key.as_deref()), (ALICE, Some("k1")));
    let stamped: Value = serde_json::from_str(&protocol::stamped(payload, 9).unwrap()).unwrap();
    assert_eq!(
        (&stamped["text"], &stamped["offset"]),
        (&"hi".into(), &9.into())
    );
    let did = s.event(LogEvent::Appended {
        from: ALICE,
        key: Some("k1".into()),
        result: Err(LogUnavailable("redis down".into())),
    });
    let [Did::SendTo(to, text)] = &did[..] else {
        panic!("{did:?}");
    };
    let refusal: Value = serde_json::from_str(text).unwrap();
    assert_eq!(*to, ALICE);
    assert_eq!(
        (&refusal["code"], &refusal["id"]),
        (&"unavailable".into(), &"k1".into())
    );
}

#[test]
fn a_users_ids_are_its_own_in_the_logs_duplicate_keys() {
    let mut s = setup();
    let send = |user: Option<&str>| {
        HomeReq::Send(Outgoing {
            room: None,
            from: "n:1.7.1".into(),
            name: None,
            ts: 5,
            text: "hi".into(),
            id: Some("k1".into()),
            user: user.map(Box::from),
            data: None,
            reply: None,
        })
    };
    let key = |did: &[Did]| match did {
        [Did::Append(_, key, _)] => key.clone(),
        _ => panic!("{did:?}"),
    };
    let alice = key(&s.request(ALICE, send(Some("alice"))));
    let mallory = key(&s.request(ALICE, send(Some("mallory"))));
    assert_eq!(alice.as_deref(), Some("u:alice:k1"));
    assert_ne!(alice, mallory, "one id, two users: two keys");
    assert_eq!(key(&s.request(ALICE, send(None))).as_deref(), Some("k1"));
    // The client is told its own id back.
    let did = s.event(LogEvent::Appended {
        from: ALICE,
        key: alice,
        result: Err(LogUnavailable("redis down".into())),
    });
    let [Did::SendTo(_, text)] = &did[..] else {
        panic!("{did:?}");
    };
    let refusal: Value = serde_json::from_str(text).unwrap();
    assert_eq!(refusal["id"], "k1");
}

#[test]
fn rooms_without_members_here_leave_nothing_behind() {
    let mut s = setup();
    // A direct message (or the API's) to a room nobody here is in: appended, nothing kept.
    let did = s.request(
        ALICE,
        HomeReq::Send(Outgoing {
            room: None,
            from: "n:1.7.1".into(),
            name: None,
            ts: 5,
            text: "psst".into(),
            id: None,
            user: None,
            data: None,
            reply: None,
        }),
    );
    assert_eq!(did.len(), 1, "{did:?}");
    assert!(s.seq.rooms.is_empty());
    // The API's history page of such a room: read, answered, then forgotten.
    let (tx, rx) = std::sync::mpsc::sync_channel(1);
    let did = s.request(
        ConnId::NONE,
        HomeReq::History {
            before: None,
            limit: 10,
            reply: Some(tx),
        },
    );
    let tag = match &did[..] {
        [Did::Read(LogRange::Tail, _, tag)] => *tag,
        other => panic!("{other:?}"),
    };
    assert_eq!(s.seq.rooms.len(), 1, "known while the read is out");
    s.answer(tag, "e1", 2, &[1, 2]);
    let page: Value = serde_json::from_str(&rx.try_recv().unwrap()).unwrap();
    assert_eq!(page["messages"].as_array().map(Vec::len), Some(2));
    assert!(s.seq.rooms.is_empty(), "forgotten once answered");
}

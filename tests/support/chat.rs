//! A chat client's steps, for the tests of the chat backend (`tests/chat.rs`,
//! `tests/history.rs`).

use serde_json::Value;

use super::{Client, Got, TestServer};

/// The next event, parsed.
pub fn event(c: &mut Client) -> Value {
    match c.next() {
        Got::Text(t) => serde_json::from_str(&t).unwrap_or_else(|e| panic!("{e}: {t}")),
        other => panic!("expected a JSON text frame, got {other:?}"),
    }
}

/// The next event that is not a presence update.
pub fn event_skipping_presence(c: &mut Client) -> Value {
    loop {
        let e = event(c);
        if e["op"] != "presence" {
            return e;
        }
    }
}

/// Sends a request.
pub fn send(c: &mut Client, v: Value) {
    c.send_text(&v.to_string());
}

/// A connected client past its welcome; returns it and its id.
pub fn member(server: &TestServer) -> (Client, String) {
    let mut c = Client::connect(server.addr);
    let welcome = event(&mut c);
    assert_eq!(welcome["op"], "welcome", "{welcome}");
    let id = welcome["id"].as_str().unwrap().to_owned();
    (c, id)
}

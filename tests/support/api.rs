//! The backend API's HTTP, for the tests: one request per connection, and the tokens the
//! tests sign.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};

use serde_json::{Value, json};

use super::patience;

/// A request to an API at `addr`: the status and the JSON answer.
pub fn call(
    addr: impl ToSocketAddrs,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> (u16, Value) {
    let (status, head, body) = call_raw(addr, method, path, key, body);
    let value = serde_json::from_str(&body).unwrap_or_else(|e| panic!("{e}: {head}{body}"));
    (status, value)
}

/// The same, the answer as text: status, head (with its blank line), body.
pub fn call_raw(
    addr: impl ToSocketAddrs,
    method: &str,
    path: &str,
    key: Option<&str>,
    body: &str,
) -> (u16, String, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(patience())).unwrap();
    let auth = key.map_or(String::new(), |k| format!("Authorization: apikey {k}\r\n"));
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: api\r\n{auth}Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut answer = String::new();
    s.read_to_string(&mut answer).unwrap();
    let (head, body) = answer.split_once("\r\n\r\n").unwrap();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    (status, format!("{head}\r\n\r\n"), body.to_owned())
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An HS256 token signed with `secret` for `user`, valid 10 minutes, with `extra` claims
/// (an object) added.
pub fn token(secret: &[u8], user: &str, extra: Value) -> String {
    let mut claims = json!({"sub": user, "exp": now() + 600});
    if let (Some(c), Value::Object(extra)) = (claims.as_object_mut(), extra) {
        c.extend(extra);
    }
    jsonwebtoken::encode(
        &jsonwebtoken::Header::new(jsonwebtoken::Algorithm::HS256),
        &claims,
        &jsonwebtoken::EncodingKey::from_secret(secret),
    )
    .unwrap()
}

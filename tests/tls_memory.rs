//! What an idle TLS session keeps, counted by the allocator: after the handshake a session
//! holds its keys and record state, and traffic leaves nothing behind (no receive or send
//! buffer stays with it). A TLS 1.3 session keeps only its keys (rustls' state dropped:
//! `src/tls/record.rs`), within [`TLS13_BOUND`]. The figures per session are printed for
//! TLS 1.3 and 1.2.

mod support;

#[path = "support/counting.rs"]
mod counting;

use std::io::Write;

use counting::held;
use ringws::tls::Session;

/// Sessions measured together (the per-session figures are their mean).
const SESSIONS: usize = 100;

/// The most an idle TLS 1.3 session may hold, heap and struct: its two AES-GCM keys as ring
/// expands them (~576 B each), IVs, traffic secrets and sequence numbers; issue 22's goal is
/// 2 KiB per idle TLS connection with the connection's own state (~200 B) included.
const TLS13_BOUND: usize = 1536;

#[test]
fn an_idle_session_keeps_its_keys_and_no_buffer() {
    let (server, cert) = support::tls::certified();
    for (name, version) in [
        ("TLS 1.3", &rustls::version::TLS13),
        ("TLS 1.2", &rustls::version::TLS12),
    ] {
        let client = support::tls::client_config(&cert, &[version], false);
        // One first: what the first handshake sets up once (lazy tables, the ticketer) is
        // not what a session costs.
        let mut warm = Session::new(&server).unwrap();
        drop(support::tls::handshake(&mut warm, &client));
        // Sessions after the handshake only (their clients gone).
        let start = held();
        let mut idle = Vec::with_capacity(SESSIONS);
        for _ in 0..SESSIONS {
            let mut s = Session::new(&server).unwrap();
            drop(support::tls::handshake(&mut s, &client));
            idle.push(s);
        }
        // The sessions' own heap: what they hold, not the vector they sit in.
        let inline = SESSIONS * std::mem::size_of::<Session>();
        let after_handshake = (held() - start - inline) / SESSIONS;
        drop(idle);
        // Sessions that then carried 64 KiB each way, in pieces of 1,000 bytes.
        let start = held();
        let mut pairs = Vec::with_capacity(SESSIONS);
        for _ in 0..SESSIONS {
            let mut s = Session::new(&server).unwrap();
            let c = support::tls::handshake(&mut s, &client);
            pairs.push((s, c));
        }
        for (s, c) in &mut pairs {
            c.writer().write_all(&[1u8; 64 * 1024]).unwrap();
            let mut input = Vec::new();
            while c.wants_write() {
                c.write_tls(&mut input).unwrap();
            }
            let (mut out, mut got) = (Vec::new(), 0);
            for piece in input.chunks_mut(1000) {
                s.receive(piece, &mut out, &mut |p| got += p.len()).unwrap();
            }
            assert_eq!(got, 64 * 1024);
            s.seal(&[2u8; 64 * 1024], &mut out).unwrap();
            assert_eq!(s.pending(), 0);
        }
        let mut sessions = Vec::with_capacity(SESSIONS);
        for (s, c) in pairs {
            drop(c);
            sessions.push(s);
        }
        let after_traffic = (held() - start - inline) / SESSIONS;
        println!(
            "{name}: {after_handshake} B of heap per idle session after the handshake, \
             {after_traffic} B after 64 KiB each way; plus {} B inline (its struct)",
            std::mem::size_of::<Session>()
        );
        // rustls allocates a small queue on first use (96 B): a constant, not a buffer.
        assert!(
            after_traffic <= after_handshake + 128,
            "{name}: traffic left {} B per session behind",
            after_traffic - after_handshake
        );
        if name == "TLS 1.3" {
            assert!(sessions.iter().all(Session::is_lean));
            let total = after_handshake + std::mem::size_of::<Session>();
            assert!(total <= TLS13_BOUND, "{name}: {total} B per idle session");
        }
        drop(sessions);
    }
}

//! The echo application: every message goes back to its sender, as the same kind. What the
//! Autobahn suite and the benchmarks run against. Also answers `GET /healthz`.

use crate::proto::handshake::HttpRequest;
use crate::server::{Conn, Decision, Handler, HttpResponse, Message, Upgrade};

/// Echoes every message; accepts every upgrade on any path.
#[derive(Debug, Clone, Default)]
pub struct Echo;

impl Handler for Echo {
    type State = ();

    fn upgrade<'r>(&mut self, _req: &Upgrade<'_, 'r>) -> Decision<'r, ()> {
        Decision::Accept {
            state: (),
            protocol: None,
        }
    }

    fn message(&mut self, conn: &mut Conn<'_, ()>, msg: Message<'_>) {
        // The same kind back; a large message goes back from the buffer it was assembled in.
        conn.send(msg);
    }

    fn http(&mut self, req: &HttpRequest<'_>) -> HttpResponse {
        match (req.method(), req.path()) {
            ("GET", "/healthz") => HttpResponse::text(200, "ok\n"),
            _ => HttpResponse::text(404, "not found\n"),
        }
    }
}

//! What the chat serves over plain HTTP on its WebSocket port: the demo page, the browser
//! client library, liveness (`/healthz`: the process answers), readiness (`/readyz`: 503 while
//! the broker of a cluster is unreachable) and the metrics. `HEAD` gets the same heads without
//! bodies (the server sees to that); other methods get 405 with `Allow`.

use super::rooms::Rooms;
use crate::proto::handshake::HttpRequest;
use crate::server::{HttpResponse, Metrics};

/// The demo chat page.
const INDEX: &str = include_str!("static/index.html");
/// The browser client library (no build step, no dependencies).
const CLIENT: &str = include_str!("static/ringws.js");

/// Answers a plain HTTP request.
pub(super) fn serve(
    req: &HttpRequest<'_>,
    metrics: Option<&Metrics>,
    rooms: &Rooms,
) -> HttpResponse {
    if req.method() != "GET" && req.method() != "HEAD" {
        return HttpResponse::text(405, "GET only\n");
    }
    let path = req.path().split('?').next().unwrap_or("");
    match path {
        "/" | "/index.html" => HttpResponse {
            status: 200,
            content_type: "text/html; charset=utf-8",
            body: INDEX.as_bytes().to_vec(),
        },
        "/ringws.js" => HttpResponse {
            status: 200,
            content_type: "text/javascript; charset=utf-8",
            body: CLIENT.as_bytes().to_vec(),
        },
        "/healthz" => HttpResponse::text(200, "ok\n"),
        "/readyz" => match metrics.and_then(Metrics::relay_ready) {
            Some(false) => HttpResponse::text(503, "broker unreachable\n"),
            _ => HttpResponse::text(200, "ready\n"),
        },
        // Browsers ask for it on every page: nothing to show, and no 404 in their console.
        "/favicon.ico" => HttpResponse {
            status: 204,
            content_type: "image/x-icon",
            body: Vec::new(),
        },
        "/metrics" => {
            let mut body = metrics.map(Metrics::prometheus).unwrap_or_default();
            body.push_str("# HELP ringws_chat_rooms Rooms with members online.\n");
            body.push_str("# TYPE ringws_chat_rooms gauge\n");
            body.push_str(&format!("ringws_chat_rooms {}\n", rooms.len()));
            HttpResponse {
                status: 200,
                content_type: "text/plain; version=0.0.4; charset=utf-8",
                body: body.into_bytes(),
            }
        }
        _ => HttpResponse::text(404, "not found\n"),
    }
}

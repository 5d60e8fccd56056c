//! What a connection token costs at the upgrade: the check of an HS256, ES256 and RS256 token
//! (`ringws::app::chat::identity`), the first time and again (a reconnect with the same token:
//! remembered), side by side with parsing the upgrade request itself (what every handshake
//! pays anyway), so the ratio shows what JWT adds per connection.
//!
//!   cargo bench --bench jwt

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use criterion::{Criterion, black_box, criterion_group, criterion_main};
use jsonwebtoken::{Algorithm, EncodingKey, Header, encode};
use ringws::app::chat::identity::Tokens;
use ringws::proto::Limits;
use ringws::proto::handshake::Request;

const SECRET: &[u8] = b"a benchmark secret of 32 bytes..";

fn bench(c: &mut Criterion) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs();
    let claims = serde_json::json!({"sub": "user-123456", "name": "Alice", "exp": now + 3600,
        "rooms": ["team-7:*", "lobby"]});
    let sign = |alg, key: &EncodingKey| encode(&Header::new(alg), &claims, key).unwrap();
    let hs = (
        Tokens::hs256(SECRET).unwrap(),
        sign(Algorithm::HS256, &EncodingKey::from_secret(SECRET)),
    );
    let es = (
        Tokens::public_key_pem(include_bytes!("../tests/data/jwt/es256-public.pem")).unwrap(),
        sign(
            Algorithm::ES256,
            &EncodingKey::from_ec_pem(include_bytes!("../tests/data/jwt/es256-private.pem"))
                .unwrap(),
        ),
    );
    let rs = (
        Tokens::public_key_pem(include_bytes!("../tests/data/jwt/rs256-public.pem")).unwrap(),
        sign(
            Algorithm::RS256,
            &EncodingKey::from_rsa_pem(include_bytes!("../tests/data/jwt/rs256-private.pem"))
                .unwrap(),
        ),
    );
    let request = format!(
        "GET /ws?token={} HTTP/1.1\r\nHost: chat.example.com\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\nOrigin: https://chat.example.com\r\n\
         Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
        hs.1
    );
    let limits = Limits::default();
    let mut group = c.benchmark_group("upgrade");
    group
        .measurement_time(Duration::from_secs(2))
        .warm_up_time(Duration::from_millis(500))
        .sample_size(30);
    group.bench_function("parse the request (baseline)", |b| {
        b.iter(|| Request::parse(black_box(request.as_bytes()), &limits).is_ok())
    });
    for (name, (tokens, token)) in [("HS256", &hs), ("ES256", &es), ("RS256", &rs)] {
        // A token seen for the first time: its signature verified.
        let mut first = tokens.clone();
        first.cache_entries = 0;
        assert!(first.check(token, now).is_ok(), "{name}");
        group.bench_function(format!("check an {name} token"), |b| {
            b.iter(|| first.check(black_box(token), now).is_ok())
        });
        // The same token again (a reconnect): remembered.
        assert!(tokens.check(token, now).is_ok(), "{name}");
        group.bench_function(format!("check an {name} token again (remembered)"), |b| {
            b.iter(|| tokens.check(black_box(token), now).is_ok())
        });
    }
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);

//! rustls' `ring` and `aws-lc-rs` providers side by side, on what a ringws worker asks of them:
//!
//! - TLS 1.3 handshakes in memory, full and resumed (a ticket), X25519, AES-128-GCM, a P-256
//!   certificate: the server's time per handshake (one thread: its CPU time);
//! - the AEAD of the records (ringws seals and opens TLS 1.3 records itself once the handshake
//!   is done, `src/tls/record.rs`): ns to seal a 20 B, 1 KiB and 16 KiB record with AES-128-GCM;
//! - the memory an expanded AES-128-GCM key holds (an idle TLS connection keeps two): malloc's
//!   bytes in use over 20,000 keys.
//!
//! `ringws-providers [--reps N]`: the reps are interleaved (ring, aws-lc-rs, ring, ...); prints
//! a Markdown table, median [min–max] and the aws-lc-rs/ring ratio.

use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, ServerConfig, ServerConnection};

const HANDSHAKES: usize = 300;
const KEYS: usize = 20_000;

#[derive(Clone, Copy, PartialEq)]
enum Provider {
    Ring,
    AwsLc,
}

impl Provider {
    fn name(self) -> &'static str {
        match self {
            Provider::Ring => "ring",
            Provider::AwsLc => "aws-lc-rs",
        }
    }

    /// The provider as ringws configures it: X25519 first, AES-128-GCM first (TLS 1.3 only).
    fn rustls(self) -> CryptoProvider {
        let mut p = match self {
            Provider::Ring => rustls::crypto::ring::default_provider(),
            Provider::AwsLc => rustls::crypto::aws_lc_rs::default_provider(),
        };
        p.kx_groups = match self {
            Provider::Ring => vec![rustls::crypto::ring::kx_group::X25519],
            Provider::AwsLc => vec![rustls::crypto::aws_lc_rs::kx_group::X25519],
        };
        p.cipher_suites
            .retain(|s| s.suite() == rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
        p
    }

    fn ticketer(self) -> Arc<dyn rustls::server::ProducesTickets> {
        match self {
            Provider::Ring => rustls::crypto::ring::Ticketer::new().unwrap(),
            Provider::AwsLc => rustls::crypto::aws_lc_rs::Ticketer::new().unwrap(),
        }
    }
}

fn configs(p: Provider, resume: bool) -> (Arc<ServerConfig>, Arc<ClientConfig>) {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let cert: CertificateDer<'static> = made.cert.der().clone();
    let key = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(made.signing_key.serialize_der()));
    let provider = Arc::new(p.rustls());
    let mut server = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_single_cert(vec![cert.clone()], key)
        .unwrap();
    server.ticketer = p.ticketer();
    let mut roots = RootCertStore::empty();
    roots.add(cert).unwrap();
    let mut client = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    if !resume {
        client.resumption = rustls::client::Resumption::disabled();
    }
    (Arc::new(server), Arc::new(client))
}

/// One handshake in memory; returns the time spent in the server's calls.
fn handshake(server: &Arc<ServerConfig>, client: &Arc<ClientConfig>) -> (Duration, bool) {
    let mut s = ServerConnection::new(server.clone()).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut c = ClientConnection::new(client.clone(), name).unwrap();
    let mut spent = Duration::ZERO;
    for _ in 0..10 {
        let mut wire = Vec::new();
        while c.wants_write() {
            c.write_tls(&mut wire).unwrap();
        }
        let start = Instant::now();
        let mut input = &wire[..];
        while !input.is_empty() {
            s.read_tls(&mut input).unwrap();
            s.process_new_packets().unwrap();
        }
        let mut back = Vec::new();
        while s.wants_write() {
            s.write_tls(&mut back).unwrap();
        }
        spent += start.elapsed();
        let mut input = &back[..];
        while !input.is_empty() {
            c.read_tls(&mut input).unwrap();
            c.process_new_packets().unwrap();
        }
        if !s.is_handshaking() && !c.is_handshaking() && !c.wants_write() {
            let resumed = c.handshake_kind() == Some(rustls::HandshakeKind::Resumed);
            return (spent, resumed);
        }
    }
    panic!("no handshake");
}

/// µs of server time per handshake over [`HANDSHAKES`] (after one to warm up, which also
/// gives a resuming client its first ticket).
fn handshakes(p: Provider, resume: bool) -> f64 {
    let (server, client) = configs(p, resume);
    handshake(&server, &client);
    let mut total = Duration::ZERO;
    for _ in 0..HANDSHAKES {
        let (spent, resumed) = handshake(&server, &client);
        assert_eq!(resumed, resume, "{}", p.name());
        total += spent;
    }
    total.as_secs_f64() * 1e6 / HANDSHAKES as f64
}

/// ns to seal one record of `len` bytes with AES-128-GCM (in place, tag apart), as
/// `src/tls/record.rs` does.
fn seal(p: Provider, len: usize) -> f64 {
    let key = [7u8; 16];
    let mut buf = vec![1u8; len];
    let runs = (50_000_000 / (len + 200)).max(2_000);
    let nonce = |i: usize| {
        let mut n = [0u8; 12];
        n[4..].copy_from_slice(&(i as u64).to_be_bytes());
        n
    };
    let start = Instant::now();
    match p {
        Provider::Ring => {
            use ring::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
            let k = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &key).unwrap());
            for i in 0..runs {
                let n = Nonce::assume_unique_for_key(nonce(i));
                let tag = k.seal_in_place_separate_tag(n, Aad::from([23u8, 3, 3, 0, 0]), &mut buf);
                std::hint::black_box(tag.unwrap());
            }
        }
        Provider::AwsLc => {
            use aws_lc_rs::aead::{AES_128_GCM, Aad, LessSafeKey, Nonce, UnboundKey};
            let k = LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &key).unwrap());
            for i in 0..runs {
                let n = Nonce::assume_unique_for_key(nonce(i));
                let tag = k.seal_in_place_separate_tag(n, Aad::from([23u8, 3, 3, 0, 0]), &mut buf);
                std::hint::black_box(tag.unwrap());
            }
        }
    }
    start.elapsed().as_secs_f64() * 1e9 / runs as f64
}

/// Bytes malloc has handed out and not taken back (Rust's allocator here is the system's
/// malloc, and AWS-LC allocates with it too).
fn heap_in_use() -> usize {
    // SAFETY: mallinfo2 reads glibc's counters; no pointer is involved.
    unsafe { libc::mallinfo2() }.uordblks
}

/// Bytes of heap per expanded AES-128-GCM key (the key schedule and GHASH tables), over
/// [`KEYS`] keys held at once.
fn key_bytes(p: Provider) -> f64 {
    let before = heap_in_use();
    let held: Vec<Box<dyn std::any::Any>> = (0..KEYS)
        .map(|i| {
            let key = [(i % 251) as u8; 16];
            let k: Box<dyn std::any::Any> = match p {
                Provider::Ring => {
                    use ring::aead::{AES_128_GCM, LessSafeKey, UnboundKey};
                    Box::new(LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &key).unwrap()))
                }
                Provider::AwsLc => {
                    use aws_lc_rs::aead::{AES_128_GCM, LessSafeKey, UnboundKey};
                    Box::new(LessSafeKey::new(UnboundKey::new(&AES_128_GCM, &key).unwrap()))
                }
            };
            k
        })
        .collect();
    let grown = heap_in_use().saturating_sub(before);
    drop(held);
    grown as f64 / KEYS as f64
}

fn main() {
    let mut reps = 5;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--reps" => reps = args.next().and_then(|n| n.parse().ok()).unwrap_or(reps),
            _ => {
                eprintln!("usage: ringws-providers [--reps N]");
                std::process::exit(2);
            }
        }
    }
    let providers = [Provider::Ring, Provider::AwsLc];
    type Figure = (&'static str, &'static str, fn(Provider) -> f64);
    let figures: [Figure; 6] = [
        ("server µs per full handshake (X25519, P-256 certificate)", ".1", |p| handshakes(p, false)),
        ("server µs per resumed handshake (ticket)", ".1", |p| handshakes(p, true)),
        ("ns to seal a 20 B record (AES-128-GCM)", ".0", |p| seal(p, 21)),
        ("ns to seal a 1 KiB record", ".0", |p| seal(p, 1025)),
        ("ns to seal a 16 KiB record", ".0", |p| seal(p, 16 * 1024 + 1)),
        ("bytes of heap per expanded AES-128-GCM key", ".0", key_bytes),
    ];
    // results[figure][provider] = one value per rep.
    let mut results = vec![vec![Vec::new(); providers.len()]; figures.len()];
    for rep in 0..reps {
        eprintln!("rep {} of {reps}", rep + 1);
        for (f, (_, _, run)) in figures.iter().enumerate() {
            for (i, p) in providers.iter().enumerate() {
                results[f][i].push(run(*p));
            }
        }
    }
    println!("| figure | ring | aws-lc-rs | aws-lc-rs / ring |");
    println!("|---|---|---|---|");
    for (f, (what, precision, _)) in figures.iter().enumerate() {
        let digits: usize = precision[1..].parse().unwrap_or(0);
        let cell = |xs: &mut Vec<f64>| {
            xs.sort_by(f64::total_cmp);
            let median = xs[xs.len() / 2];
            let text = format!(
                "{median:.digits$} [{:.digits$}–{:.digits$}]",
                xs[0],
                xs[xs.len() - 1]
            );
            (text, median)
        };
        let (ring, ring_m) = cell(&mut results[f][0]);
        let (aws, aws_m) = cell(&mut results[f][1]);
        println!("| {what} | {ring} | {aws} | ×{:.2} |", aws_m / ring_m);
    }
}

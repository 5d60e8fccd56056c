//! The load tool against a real ringws server (in this process, on a free loopback port): its
//! flood mode (open loop, every echo checked) completes with no error of any kind, and so does
//! ping-pong over `wss://` (`--tls-ca`), and connections that resume TLS sessions
//! (`--tls-resume`) are counted; piped, it prints no status line. The backend follows `RINGWS_TEST_IO` (`epoll` or
//! `uring`), as the server's own integration tests do.

mod common;

use common::{echo_server, io, load_tool, stop};
use ringws::app::echo::Echo;
use ringws::server::{Server, ServerConfig};

/// The report of a run, checked: a success, no error of any kind, messages echoed.
fn clean_report(out: &std::process::Output) -> serde_json::Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stdout}\n{stderr}");
    let report: serde_json::Value = serde_json::from_str(stdout.trim()).expect("one JSON line");
    let errors = &report["errors"];
    assert!(
        errors.as_object().unwrap().values().all(|v| v == 0),
        "{errors} {}",
        report["notes"]
    );
    assert!(report["messages"].as_u64().unwrap_or(0) > 0, "{report}");
    report
}

#[test]
fn ping_pong_over_wss_gets_every_echo() {
    let made = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let key = rustls_key(&made.signing_key.serialize_der());
    let tls = ringws::tls::TlsConfig::new(vec![made.cert.der().clone()], key).unwrap();
    let ca = std::env::temp_dir().join(format!("ringws-load-ca-{}.pem", std::process::id()));
    std::fs::write(&ca, made.cert.pem()).unwrap();
    let cfg = ServerConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        workers: 1,
        io: io(),
        tls: Some(tls),
        ..ServerConfig::default()
    };
    let server = Server::bind(cfg, Echo).expect("bind");
    let port = server.local_addr().port();
    let handle = server.start().expect("start");
    let out = load_tool()
        .args(["pingpong", "--url", &format!("wss://localhost:{port}/")])
        .arg("--tls-ca")
        .arg(&ca)
        .args(["-c", "4", "-d", "1", "-w", "0.2", "--json", "--quiet"])
        .output()
        .expect("run ringws-load");
    clean_report(&out);
    // 40 connections, 4 at a time: with --tls-resume all but the first 4 resume a ticket (the
    // server sends two per handshake; the load tool keeps them all); without it none does.
    let idle = |resume: bool| {
        let mut cmd = load_tool();
        cmd.args(["idle", "--url", &format!("wss://localhost:{port}/")])
            .arg("--tls-ca")
            .arg(&ca)
            .args(["-c", "40", "--concurrency", "4", "-d", "0.2"])
            .args(["--json", "--quiet"]);
        if resume {
            cmd.arg("--tls-resume");
        }
        let out = cmd.output().expect("run ringws-load");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let report: serde_json::Value =
            serde_json::from_slice(out.stdout.trim_ascii()).expect("one JSON line");
        assert_eq!(report["established"], 40, "{report}");
        report["tls_resumed"].as_u64().unwrap_or(0)
    };
    let resumed = idle(true);
    assert!((34..=40).contains(&resumed), "{resumed} of 40 resumed");
    assert_eq!(idle(false), 0);
    handle.shutdown();
    handle.join().expect("the server stops cleanly");
    let _ = std::fs::remove_file(&ca);
}

fn rustls_key(pkcs8: &[u8]) -> rustls::pki_types::PrivateKeyDer<'static> {
    rustls::pki_types::PrivateKeyDer::Pkcs8(rustls::pki_types::PrivatePkcs8KeyDer::from(
        pkcs8.to_vec(),
    ))
}

#[test]
fn the_load_tools_flood_mode_gets_every_echo() {
    let (addr, handle) = echo_server();
    let out = load_tool()
        .args(["flood", "--addr", &addr.to_string()])
        .args([
            "-c", "8", "--size", "1024", "--binary", "-d", "2", "-w", "0.5",
        ])
        .args(["--json", "--quiet"])
        .output()
        .expect("run ringws-load");
    stop(handle);
    clean_report(&out);
}

#[test]
fn piped_without_quiet_the_tool_writes_its_report_and_nothing_else() {
    let (addr, handle) = echo_server();
    // Over a second of work (the status line is updated once a second), stderr a pipe: the
    // status line is for terminals only.
    let out = load_tool()
        .args(["pingpong", "--addr", &addr.to_string()])
        .args(["-c", "2", "-d", "1.5", "-w", "0.2", "--json"])
        .output()
        .expect("run ringws-load");
    stop(handle);
    clean_report(&out);
    assert!(
        out.stderr.is_empty(),
        "stderr: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

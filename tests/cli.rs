//! The `ringws` binary: bad flags and a busy port fail at once with a message naming the cause
//! (never printing a broker's password); SIGTERM stops it cleanly with exit code 0; a broker
//! from the config file that is down leaves the server serving, with the outage warned once.

mod support;

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use support::{Binary, Client, free_port, upgrade_request};

fn ringws(args: &[&str]) -> std::process::Output {
    support::bin(env!("CARGO_BIN_EXE_ringws"))
        .args(args)
        .output()
        .expect("run ringws")
}

#[test]
fn bad_flags_name_the_flag() {
    const CERT: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls/cert.pem");
    const KEY: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls/key.pem");
    // The test certificate is for localhost: not valid for another name.
    let other_name = format!("chat.example.com={CERT},{KEY}");
    let missing = format!("localhost=/nonexistent.pem,{KEY}");
    for (args, flag) in [
        (&["--max-fragments", "0"][..], "--max-fragments"),
        (&["--recv-buffers", "3"][..], "--recv-buffers"),
        (&["--close-timeout", "soon"][..], "--close-timeout"),
        (&["--listen", "not-an-address"][..], "--listen"),
        (&["--mode", "nonsense"][..], "--mode"),
        (&["--text-heartbeat", "ping"][..], "--text-heartbeat"),
        (&["--tick", "5s"][..], "--tick"),
        (&["--broker", "http://127.0.0.1:6379"][..], "--broker"),
        (&["--broker", "redis://[::1"][..], "--broker"),
        (&["--broker-prefix", "x:"][..], "--broker"),
        (&["--jwt-secret", "too short"][..], "--jwt-secret"),
        (
            &["--jwt-public-key", "/nonexistent.pem"][..],
            "--jwt-public-key",
        ),
        (&["--jwt-public-key", "Cargo.toml"][..], "--jwt-public-key"),
        (&["--jwt-issuer", "auth.example"][..], "--jwt-issuer"),
        (
            &[
                "--jwt-secret",
                "0123456789abcdef0123456789abcdef",
                "--jwt-audience",
                " ",
            ][..],
            "--jwt-audience",
        ),
        (
            &["--auth-token", "t", "--jwt-secret", "s"][..],
            "--auth-token",
        ),
        (&["--send-burst", "0"][..], "--send-burst"),
        (&["--send-rate", "fast"][..], "--send-rate"),
        (&["--trusted-proxy", "10.0.0.0/33"][..], "--trusted-proxy"),
        (&["--api-listen", "127.0.0.1:1"][..], "--api-key"),
        (&["--tls-cert", "Cargo.toml"][..], "--tls-key"),
        (
            &[
                "--tls-cert",
                "/nonexistent.pem",
                "--tls-key",
                "/nonexistent.pem",
            ][..],
            "--tls-cert",
        ),
        (
            &["--tls-cert", "Cargo.toml", "--tls-key", "Cargo.toml"][..],
            "--tls-cert",
        ),
        (&["--tls-sni", &other_name][..], "--tls-cert"),
        (
            &[
                "--tls-cert",
                CERT,
                "--tls-key",
                KEY,
                "--tls-sni",
                "localhost",
            ][..],
            "--tls-sni",
        ),
        (
            &[
                "--tls-cert",
                CERT,
                "--tls-key",
                KEY,
                "--tls-sni",
                &other_name,
            ][..],
            "--tls-sni: server name chat.example.com",
        ),
        (
            &["--tls-cert", CERT, "--tls-key", KEY, "--tls-sni", &missing][..],
            "--tls-sni: server name localhost: cannot read /nonexistent.pem",
        ),
    ] {
        let out = ringws(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
}

#[test]
fn a_broker_password_is_never_printed() {
    let out = ringws(&["--broker", "rediss://user:s3cret@10.0.0.5:6379"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(
        stderr.contains("--broker") && stderr.contains("***@10.0.0.5"),
        "{stderr}"
    );
    assert!(!stderr.contains("s3cret"), "{stderr}");
}

#[test]
fn a_port_in_use_is_a_one_line_error() {
    let taken = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let out = ringws(&["--listen", &addr]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains(&format!("cannot listen on {addr}")),
        "{stderr}"
    );
    assert!(stderr.to_lowercase().contains("in use"), "{stderr}");
}

#[test]
fn sigterm_stops_the_server_with_exit_code_0() {
    let port = free_port();
    let mut child = support::bin(env!("CARGO_BIN_EXE_ringws"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--workers", "2"])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    // Serving (so its signal handling is in place) before it is told to stop.
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < support::patience(),
            "ringws did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(child.try_wait().unwrap().is_none(), "the server is running");
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let start = Instant::now();
    loop {
        if let Some(status) = child.try_wait().unwrap() {
            assert_eq!(status.code(), Some(0));
            break;
        }
        assert!(start.elapsed() < support::patience(), "did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sighup_without_tls_is_logged_and_the_server_keeps_serving() {
    use std::io::BufRead;
    let port = free_port();
    let mut child = support::bin(env!("CARGO_BIN_EXE_ringws"))
        .args(["--listen", &format!("127.0.0.1:{port}"), "--workers", "1"])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let (tx, lines) = std::sync::mpsc::channel();
    let stderr = child.stderr.take().unwrap();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stderr)
            .lines()
            .map_while(Result::ok)
        {
            let _ = tx.send(line);
        }
    });
    let wait_for = |what: &str| loop {
        match lines.recv_timeout(support::patience()) {
            Ok(line) if line.contains(what) => return line,
            Ok(_) => continue,
            Err(e) => panic!("no log line with {what:?}: {e}"),
        }
    };
    wait_for("listening on");
    let pid = child.id().to_string();
    let signal = |name: &str| {
        let kill = Command::new("kill").args([name, &pid]).status().unwrap();
        assert!(kill.success());
    };
    // A SIGHUP's default action would end the process: it is handled and logged instead.
    signal("-HUP");
    wait_for("SIGHUP: nothing to reload");
    assert!(child.try_wait().unwrap().is_none(), "still running");
    assert!(std::net::TcpStream::connect(("127.0.0.1", port)).is_ok());
    signal("-TERM");
    wait_for("stopped");
    assert_eq!(child.wait().unwrap().code(), Some(0));
}

#[test]
fn without_io_uring_auto_falls_back_to_epoll_says_why_and_serves() {
    use std::io::{Read, Write};
    let port = free_port();
    let child = support::bin(env!("CARGO_BIN_EXE_ringws"))
        .args([
            "--mode",
            "echo",
            "--io",
            "auto",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--workers",
            "1",
        ])
        .env("RINGWS_TEST_URING_ERRNO", "1") // EPERM, as a container's seccomp profile answers
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The server works: an upgrade and an echo.
    let start = Instant::now();
    let mut stream = loop {
        match std::net::TcpStream::connect(("127.0.0.1", port)) {
            Ok(s) => break s,
            Err(_) if start.elapsed() < support::patience() => {
                std::thread::sleep(Duration::from_millis(20))
            }
            Err(e) => panic!("server not up: {e}"),
        }
    };
    stream.set_read_timeout(Some(support::patience())).unwrap();
    stream
        .write_all(
            b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
              Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n\
              \x81\x85\x37\xfa\x21\x3d\x7f\x9f\x4d\x51\x58",
        )
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 512];
    while !got.ends_with(b"\x81\x05Hello") {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "EOF; got {:?}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    assert!(got.starts_with(b"HTTP/1.1 101"));
    drop(stream);
    Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    let log = String::from_utf8_lossy(&out.stderr);
    let line = log
        .lines()
        .find(|l| l.contains("io_uring unavailable"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(line.contains("EPERM") && line.contains("epoll"), "{line}");
    assert!(log.contains("backend epoll"), "{log}");
}

#[test]
fn io_uring_demanded_but_unavailable_fails_at_start_with_the_cause() {
    let out = support::bin(env!("CARGO_BIN_EXE_ringws"))
        .args([
            "--io",
            "uring",
            "--listen",
            &format!("127.0.0.1:{}", free_port()),
        ])
        .env("RINGWS_TEST_URING_ERRNO", "38") // ENOSYS
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("io_uring unavailable") && stderr.contains("ENOSYS"),
        "{stderr}"
    );
}

#[test]
fn a_config_file_sets_options_and_the_command_line_wins() {
    use std::io::{Read, Write};
    let dir = std::env::temp_dir().join(format!("ringws-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let port = free_port();
    let file = dir.join("ringws.toml");
    std::fs::write(
        &file,
        format!(
            "listen = \"127.0.0.1:{port}\"\nworkers = 1\nmode = \"chat\"\nmax-rooms = 2\n\
             max-text = 100\nallow-origin = [\"http://a.example\", \"http://b.example\"]\n"
        ),
    )
    .unwrap();
    let mut child = support::bin(env!("CARGO_BIN_EXE_ringws"))
        .arg("--config")
        .arg(&file)
        .args(["--max-rooms", "3"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let welcome = |origin: &str| -> String {
        let start = Instant::now();
        let mut s = loop {
            match std::net::TcpStream::connect(("127.0.0.1", port)) {
                Ok(s) => break s,
                Err(_) if start.elapsed() < support::patience() => {
                    std::thread::sleep(Duration::from_millis(20))
                }
                Err(e) => panic!("server not up: {e}"),
            }
        };
        s.set_read_timeout(Some(support::patience())).unwrap();
        write!(
            s,
            "GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             Origin: {origin}\r\n\r\n"
        )
        .unwrap();
        let mut got = Vec::new();
        let mut buf = [0u8; 1024];
        while !got.ends_with(b"}") && !got.ends_with(b"\r\n\r\n\n") && got.len() < 4096 {
            match s.read(&mut buf) {
                Ok(0) | Err(_) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
            }
        }
        String::from_utf8_lossy(&got).into_owned()
    };
    let a = welcome("http://a.example");
    assert!(a.starts_with("HTTP/1.1 101"), "{a}");
    assert!(a.contains("\"max_rooms\":3"), "the command line wins: {a}");
    assert!(a.contains("\"max_text\":100"), "the file sets: {a}");
    assert!(welcome("http://b.example").starts_with("HTTP/1.1 101"));
    assert!(welcome("http://c.example").starts_with("HTTP/1.1 403"));
    let _ = child.kill();
    let _ = child.wait();

    // Unknown keys and bad values are named.
    std::fs::write(&file, "max-romos = 2\n").unwrap();
    let out = ringws(&["--config", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("max-romos"), "{stderr}");
    std::fs::write(&file, "max-rooms = 0\n").unwrap();
    let out = ringws(&["--config", file.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    assert!(stderr.contains("--max-rooms"), "{stderr}");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_broker_from_the_config_file_that_is_down_is_logged_once_and_the_server_serves() {
    // With a password in the URL: it appears nowhere in the log (start-up line, the outage's
    // warning with the connection error, the retries).
    let (port, dead) = (free_port(), free_port());
    let dir = std::env::temp_dir().join(format!("ringws-cli-broker-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let config = dir.join("ringws.toml");
    std::fs::write(
        &config,
        format!(
            "listen = \"127.0.0.1:{port}\"\nworkers = 1\nbroker = \"redis://:s3cret@127.0.0.1:{dead}\"\n"
        ),
    )
    .unwrap();
    let log = dir.join("log");
    let mut child = support::bin(env!("CARGO_BIN_EXE_ringws"))
        .args(["--config", config.to_str().unwrap()])
        .env("RUST_LOG", "info,ringws=debug")
        .stdout(std::fs::File::create(dir.join("stdout")).unwrap())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(
            start.elapsed() < support::patience() * 2,
            "ringws did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    // Several reconnection attempts (100 ms, 200 ms, 400 ms... apart) fail meanwhile: wait for
    // two of them in the log.
    let start = Instant::now();
    while std::fs::read_to_string(&log)
        .unwrap_or_default()
        .matches("still unreachable")
        .count()
        < 2
    {
        assert!(
            start.elapsed() < support::patience() * 2,
            "no retries logged"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let mut http = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    use std::io::{Read, Write};
    http.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let mut reply = String::new();
    let _ = http.read_to_string(&mut reply);
    let _ = child.kill();
    let _ = child.wait();
    let text = std::fs::read_to_string(&log).unwrap();
    let stdout = std::fs::read_to_string(dir.join("stdout")).unwrap();
    let _ = std::fs::remove_dir_all(&dir);
    assert!(
        !text.contains("s3cret") && !stdout.contains("s3cret"),
        "the password leaked:\n{text}\n{stdout}"
    );
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        text.contains(&format!("rooms shared through redis://127.0.0.1:{dead}")),
        "{text}"
    );
    let warnings = text
        .lines()
        .filter(|l| l.contains("unreachable (") && !l.contains("still unreachable"))
        .count();
    assert_eq!(warnings, 1, "warned once:\n{text}");
    assert!(
        text.matches("still unreachable").count() >= 2,
        "retried:\n{text}"
    );
}

#[test]
fn the_auth_token_guards_the_chat_in_the_query_and_as_a_bearer() {
    let server = Binary::start_mode("chat", &["--auth-token", "s3cret"]);
    let upgrade = |path: &str, header: &str| -> u16 {
        let mut c = Client::raw(server.addr);
        let request = upgrade_request(path).replacen("\r\n\r\n", &format!("\r\n{header}\r\n"), 1);
        c.send_raw(request.as_bytes());
        c.read_http_head().0
    };
    let bearer = |token: &str| format!("Authorization: Bearer {token}\r\n");
    assert_eq!(upgrade("/ws?token=s3cret", ""), 101, "in the query");
    assert_eq!(
        upgrade("/ws?room=a&token=s3cret", ""),
        101,
        "among other parameters"
    );
    assert_eq!(upgrade("/ws", &bearer("s3cret")), 101, "as a bearer");
    assert_eq!(upgrade("/ws", ""), 401, "missing");
    assert_eq!(upgrade("/ws?token=wrong", ""), 401, "wrong");
    assert_eq!(upgrade("/ws?token=s3cre", ""), 401, "a prefix of it");
    assert_eq!(upgrade("/ws?token=s3cret2", ""), 401, "longer");
    assert_eq!(upgrade("/ws", &bearer("wrong")), 401, "a wrong bearer");
    assert_eq!(
        upgrade("/ws", "Authorization: Basic s3cret\r\n"),
        401,
        "another scheme"
    );
    // The page and the health check stay open: only the WebSocket is guarded.
    let mut page = Client::raw(server.addr);
    page.send_raw(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(page.read_http_head().0, 200);
}

/// Runs the binary with `args` (echo mode, one worker, RUST_LOG unset) until it serves, stops
/// it with SIGTERM, and returns its stderr (the log).
fn log_of_a_run(args: &[&str]) -> String {
    let port = free_port();
    let child = support::bin(env!("CARGO_BIN_EXE_ringws"))
        .args(["--mode", "echo", "--workers", "1"])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(args)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    support::wait_until("ringws listens", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let out = child.wait_with_output().unwrap();
    assert_eq!(out.status.code(), Some(0));
    String::from_utf8(out.stderr).expect("the log is UTF-8")
}

#[test]
fn json_log_lines_parse_and_carry_fields() {
    let log = log_of_a_run(&["--log-format", "json"]);
    let lines: Vec<serde_json::Value> = log
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l}")))
        .collect();
    for line in &lines {
        for field in ["timestamp", "level", "message"] {
            assert!(line.get(field).is_some(), "{field} missing: {line}");
        }
    }
    let start = lines
        .iter()
        .find(|l| l.get("url").is_some())
        .unwrap_or_else(|| panic!("no start line: {log}"));
    assert_eq!(start["level"], "INFO");
    assert_eq!(start["mode"], "echo");
    assert_eq!(start["compression"], "off");
    assert_eq!(start["workers"], 1);
    assert!(
        ["io_uring", "epoll"].contains(&start["backend"].as_str().unwrap()),
        "{start}"
    );
    assert!(
        start["url"]
            .as_str()
            .unwrap()
            .starts_with("ws://127.0.0.1:"),
        "{start}"
    );
    assert!(lines.iter().any(|l| l["message"] == "stopped"), "{log}");
}

#[test]
fn text_log_has_no_escapes_when_piped_says_the_start_in_words_and_follows_the_level() {
    let log = log_of_a_run(&[]);
    assert!(
        !log.contains('\x1b'),
        "escape bytes in a piped log: {log:?}"
    );
    let start = log
        .lines()
        .find(|l| l.contains("listening on ws://127.0.0.1:"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        start.contains("echo mode, compression off, backend ") && start.contains(", 1 workers,"),
        "{start}"
    );
    assert!(!start.contains("Echo") && !start.contains("Off"), "{start}");
    // --log-level warn: no info line (the start line is info).
    let quiet = log_of_a_run(&["--log-level", "warn"]);
    assert!(!quiet.contains("listening on"), "{quiet}");
    assert!(!quiet.contains(" INFO "), "{quiet}");
}

#[test]
fn a_storm_of_bad_handshakes_is_summarized_not_logged_one_by_one() {
    use std::io::{Read, Write};
    const BAD: usize = 2000;
    const WORKERS: usize = 2;
    let port = free_port();
    let dir = std::env::temp_dir().join(format!("ringws-storm-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let log = dir.join("log");
    let mut child = support::bin(env!("CARGO_BIN_EXE_ringws"))
        .args(["--mode", "echo", "--workers", &WORKERS.to_string()])
        .args(["--listen", &format!("127.0.0.1:{port}")])
        .args(["--log-format", "json"])
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    support::wait_until("ringws listens", || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let start = Instant::now();
    // An upgrade without Sec-WebSocket-Key: 400, each on its own connection.
    let request = "GET / HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\
                   Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\r\n";
    for i in 0..BAD {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(support::patience())).unwrap();
        s.write_all(request.as_bytes()).unwrap();
        let mut reply = String::new();
        let _ = s.read_to_string(&mut reply);
        assert!(reply.starts_with("HTTP/1.1 400"), "{i}: {reply}");
    }
    // The summaries add up to every refusal, by reason.
    let summaries = || -> Vec<serde_json::Value> {
        std::fs::read_to_string(&log)
            .unwrap()
            .lines()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|l| l.get("http_error").is_some())
            .collect()
    };
    let told = |lines: &[serde_json::Value]| -> u64 {
        lines
            .iter()
            .map(|l| l["http_error"].as_u64().unwrap())
            .sum()
    };
    support::wait_until("the summaries count every refusal", || {
        told(&summaries()) == BAD as u64
    });
    let elapsed = start.elapsed().as_secs_f64();
    let lines = summaries();
    assert!(
        lines.len() as f64 <= WORKERS as f64 * (elapsed + 2.0),
        "{} summary lines in {elapsed:.1} s",
        lines.len()
    );
    for l in &lines {
        assert!(l["worker"].as_u64().unwrap() < WORKERS as u64, "{l}");
        assert_eq!(l["protocol_error"], 0, "{l}");
    }
    let all = std::fs::read_to_string(&log).unwrap();
    assert!(
        all.lines().count() < 20 + lines.len(),
        "a line per refusal?\n{all}"
    );
    let _ = child.kill();
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn version_names_the_version_commit_target_and_backends() {
    let out = ringws(&["--version"]);
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let line = text.trim();
    assert!(
        line.starts_with(&format!("ringws {} (commit ", env!("CARGO_PKG_VERSION"))),
        "{line}"
    );
    let commit = line
        .split("(commit ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap_or_default();
    assert!(
        commit == "unknown"
            || (commit.len() == 12 && commit.bytes().all(|b| b.is_ascii_hexdigit())),
        "{line}"
    );
    assert!(
        line.contains(&format!(", {}-", std::env::consts::ARCH)) && line.contains("-linux-"),
        "{line}"
    );
    assert!(line.ends_with(", backends io_uring epoll)"), "{line}");
}

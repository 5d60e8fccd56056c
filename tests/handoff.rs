//! Live hand-over (`--handoff-socket`, `--take-over`): a new process takes the running
//! server's listening sockets, so no connection attempt is refused or dropped across a deploy;
//! the old server closes its connections with 1012 (service restart) and exits 0; the backend API's
//! socket goes along; a take-over that dies on the way leaves the old server serving and able to
//! answer the next one; a take-over with nobody to take over from fails with a message.

mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, ExitStatus, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use support::{Client, Got, free_port, patience, wait_until};

/// A `ringws` process with its log in a file.
struct Proc {
    child: Child,
    log: PathBuf,
}

impl Proc {
    fn start(dir: &Path, name: &str, args: &[&str]) -> Proc {
        Self::start_env(dir, name, args, &[])
    }

    fn start_env(dir: &Path, name: &str, args: &[&str], env: &[(&str, &Path)]) -> Proc {
        let io = std::env::var("RINGWS_TEST_IO").unwrap_or_else(|_| "auto".into());
        let log = dir.join(format!("{name}.log"));
        let child = support::bin(env!("CARGO_BIN_EXE_ringws"))
            .args(["--io", &io, "--workers", "2"])
            .args(args)
            .env("RUST_LOG", "ringws=info")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .expect("start ringws");
        Proc { child, log }
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Waits for `line` in the log (the process must not exit first).
    fn wait_log(&mut self, line: &str) {
        let start = Instant::now();
        loop {
            if self.log().contains(line) {
                return;
            }
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("exited ({status}) before logging {line:?}:\n{}", self.log());
            }
            assert!(
                start.elapsed() < patience() * 4,
                "no {line:?} in the log:\n{}",
                self.log()
            );
            std::thread::sleep(std::time::Duration::from_millis(10));
        }
    }

    fn wait_exit(&mut self) -> ExitStatus {
        let mut status = None;
        wait_until("the process exits", || {
            status = self.child.try_wait().unwrap();
            status.is_some()
        });
        status.unwrap()
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("ringws-handoff-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// A server's flags with a control socket in `dir` (a take-over repeats them).
struct Setup {
    addr: SocketAddr,
    control: PathBuf,
    flags: Vec<String>,
}

impl Setup {
    fn new(dir: &Path, mode: &str, extra: &[&str]) -> Setup {
        let addr: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
        let control = dir.join("handoff.sock");
        let mut flags: Vec<String> = ["--mode", mode, "--listen", &addr.to_string()]
            .iter()
            .chain(extra)
            .map(|s| s.to_string())
            .collect();
        flags.extend(["--handoff-socket".into(), control.display().to_string()]);
        Setup {
            addr,
            control,
            flags,
        }
    }

    /// The server (with `--take-over` when `take_over`), with `env`.
    fn start(&self, dir: &Path, name: &str, take_over: bool, env: &[(&str, &Path)]) -> Proc {
        let mut args: Vec<&str> = self.flags.iter().map(String::as_str).collect();
        if take_over {
            args.push("--take-over");
        }
        Proc::start_env(dir, name, &args, env)
    }
}

/// What one connection attempt of [`connect_once`] ended with.
#[derive(Debug, Default)]
struct Tally {
    /// Upgraded, and a message echoed.
    echoed: u64,
    /// The connection was refused: nobody accepted on the port.
    refused: u64,
    /// Upgraded, then closed with 1012 before the echo (the old server's drain).
    restarted: u64,
    /// Accepted, then closed before the upgrade's answer (the old server stopping with it in
    /// hand): a client retries.
    dropped: u64,
    /// Anything else, with what happened.
    other: Vec<String>,
}

/// Opens connections one after another until stopped: upgrade, one message echoed, close.
fn connect_once(addr: SocketAddr, tally: &mut Tally) {
    let mut s = match TcpStream::connect(addr) {
        Ok(s) => s,
        Err(e) if e.kind() == ErrorKind::ConnectionRefused => {
            tally.refused += 1;
            return;
        }
        Err(e) => return tally.other.push(format!("connect: {e}")),
    };
    s.set_read_timeout(Some(patience())).unwrap();
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    let upgraded = s
        .write_all(support::upgrade_request("/").as_bytes())
        .and_then(|()| {
            while !head.ends_with(b"\r\n\r\n") {
                if s.read(&mut byte)? == 0 {
                    return Err(ErrorKind::UnexpectedEof.into());
                }
                head.push(byte[0]);
            }
            Ok(())
        });
    match upgraded {
        Err(e)
            if matches!(
                e.kind(),
                ErrorKind::UnexpectedEof | ErrorKind::ConnectionReset
            ) =>
        {
            return tally.dropped += 1;
        }
        Err(e) => return tally.other.push(format!("upgrade: {e}")),
        Ok(()) if !head.starts_with(b"HTTP/1.1 101") => {
            return tally
                .other
                .push(format!("answer: {}", String::from_utf8_lossy(&head)));
        }
        Ok(()) => {}
    }
    // "hi", masked with a zero key.
    let _ = s.write_all(&[0x81, 0x82, 0, 0, 0, 0, b'h', b'i']);
    let mut frame = [0u8; 4];
    match s.read_exact(&mut frame) {
        Ok(()) if frame == [0x81, 2, b'h', b'i'] => tally.echoed += 1,
        Ok(()) if frame[0] == 0x88 && u16::from_be_bytes([frame[2], frame[3]]) == 1012 => {
            tally.restarted += 1
        }
        Ok(()) => tally.other.push(format!("frame {frame:?}")),
        Err(e) => tally.other.push(format!("echo: {e}")),
    }
    let _ = s.write_all(&[0x88, 0x82, 0, 0, 0, 0, 0x03, 0xe8]);
}

/// A thread opening connections until `stop`.
fn connector(addr: SocketAddr, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<Tally> {
    std::thread::spawn(move || {
        let mut tally = Tally::default();
        while !stop.load(Ordering::Relaxed) {
            connect_once(addr, &mut tally);
        }
        tally
    })
}

fn echo(client: &mut Client, text: &str) {
    client.send_text(text);
    assert_eq!(client.next(), Got::Text(text.into()));
}

#[test]
fn three_take_overs_in_a_row_never_refuse_a_connection_and_each_old_server_leaves_with_1012() {
    let dir = temp_dir("three");
    let setup = Setup::new(&dir, "echo", &[]);
    let addr = setup.addr;
    let mut old = setup.start(&dir, "first", false, &[]);
    old.wait_log("answering take-overs");
    let stop = Arc::new(AtomicBool::new(false));
    let load = connector(addr, stop.clone());
    let mut pids = vec![old.pid()];
    for round in 1..=3 {
        let mut held = Client::connect(addr);
        echo(&mut held, "before");
        let mut new = setup.start(&dir, &format!("round-{round}"), true, &[]);
        new.wait_log(&format!("accepting; process {} told to stop", old.pid()));
        // The old server closes what it holds with 1012 and exits 0 (once the client's end is
        // closed too: it lingers for that).
        held.expect_close(1012);
        drop(held);
        let status = old.wait_exit();
        assert!(
            status.success(),
            "round {round}: old server {status}:\n{}",
            old.log()
        );
        assert!(
            old.log()
                .contains(&format!("process {} accepts on the listeners", new.pid())),
            "{}",
            old.log()
        );
        // The new one serves on the same port and answers the next take-over.
        new.wait_log("answering take-overs");
        let mut fresh = Client::connect(addr);
        echo(&mut fresh, "after");
        assert!(!pids.contains(&new.pid()));
        pids.push(new.pid());
        old = new;
    }
    stop.store(true, Ordering::Relaxed);
    let tally = load.join().unwrap();
    eprintln!("connections during the take-overs: {tally:?}");
    // Never refused; never dropped without an answer (an old server's connection in its
    // handshake finishes it and gets 1012).
    assert_eq!((tally.refused, tally.dropped), (0, 0), "{tally:?}");
    assert!(tally.other.is_empty(), "{tally:?}");
    assert!(tally.echoed > 0, "{tally:?}");
    let _ = std::fs::remove_dir_all(&dir);
}

fn api_get(addr: SocketAddr, path: &str, key: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(patience())).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: x\r\nAuthorization: apikey {key}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut answer = String::new();
    let _ = s.read_to_string(&mut answer);
    let status = answer
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    (status, answer)
}

/// The process that answered `GET /api/info`.
fn api_pid(api: SocketAddr) -> u32 {
    let (status, answer) = api_get(api, "/api/info", "handoff-key");
    assert_eq!(status, 200, "{answer}");
    let body = answer.split_once("\r\n\r\n").map_or("", |(_, b)| b);
    let info: serde_json::Value = serde_json::from_str(body).expect(body);
    info["pid"].as_u64().expect("pid in /api/info") as u32
}

#[test]
fn the_backend_api_socket_goes_along_and_only_the_new_process_answers_once_it_accepts() {
    let dir = temp_dir("api");
    let api: SocketAddr = format!("127.0.0.1:{}", free_port()).parse().unwrap();
    let api_flags = ["--api-listen", &api.to_string(), "--api-key", "handoff-key"];
    let setup = Setup::new(&dir, "chat", &api_flags);
    let mut old = setup.start(&dir, "old", false, &[]);
    old.wait_log("answering take-overs");
    assert_eq!(api_pid(api), old.pid());
    // A connection that never sends its request keeps the old process alive after the
    // hand-over (a restart lets a handshake under way finish), until it is closed below.
    let lingering = TcpStream::connect(setup.addr).unwrap();
    let mut new = setup.start(&dir, "new", true, &[]);
    new.wait_log("received 3 listening sockets");
    new.wait_log("told to stop");
    // The old process stops accepting API requests (within its accept wait) while it still
    // runs: from then on the new one answers every request, on the socket it was given (the
    // port was never bound again: the old process holds it, without SO_REUSEPORT).
    wait_until("the new process answers the API", || {
        api_pid(api) == new.pid()
    });
    for _ in 0..20 {
        assert_eq!(api_pid(api), new.pid());
    }
    assert!(
        old.child.try_wait().unwrap().is_none(),
        "the old process still runs"
    );
    drop(lingering);
    assert!(old.wait_exit().success(), "{}", old.log());
    assert_eq!(api_pid(api), new.pid());
    new.wait_log("answering take-overs");
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn a_take_over_that_dies_on_the_way_leaves_the_old_server_serving_and_answering() {
    let dir = temp_dir("dies");
    let setup = Setup::new(&dir, "echo", &[]);
    let (addr, control) = (setup.addr, &setup.control);
    let mut old = setup.start(&dir, "old", false, &[]);
    old.wait_log("answering take-overs");
    let mut held = Client::connect(addr);
    echo(&mut held, "held");
    // A taker that receives the listening sockets and then is gone without accepting (as a
    // new process killed in the middle would be: its end of the control socket closes).
    let taken = ringws::handoff::take_over(control, patience()).expect("take over");
    assert_eq!(taken.listeners.websocket.len(), 2);
    assert_eq!(taken.listeners.websocket[0].local_addr().unwrap(), addr);
    drop(taken);
    old.wait_log("a take-over failed");
    // Its copies of the sockets are closed; the old server's still accept, and what it held is
    // untouched.
    let mut fresh = Client::connect(addr);
    echo(&mut fresh, "still here");
    fresh.send_close(1000, "");
    fresh.expect_close(1000);
    echo(&mut held, "still held");
    // A new process started with another --listen refuses before telling anyone to stop.
    let other = format!("127.0.0.1:{}", free_port());
    let mut wrong = Proc::start(
        &dir,
        "wrong",
        &["--mode", "echo", "--listen", &other, "--handoff-socket"],
    );
    assert!(!wrong.wait_exit().success());
    assert!(wrong.log().contains("--handoff-socket"), "{}", wrong.log());
    let mut wrong = Proc::start(
        &dir,
        "wrong-listen",
        &[
            "--mode",
            "echo",
            "--listen",
            &other,
            "--handoff-socket",
            control.to_str().unwrap(),
            "--take-over",
        ],
    );
    assert!(!wrong.wait_exit().success());
    assert!(
        wrong
            .log()
            .contains(&format!("listens on {addr} and --listen says {other}")),
        "{}",
        wrong.log()
    );
    echo(&mut held, "held through a refused take-over");
    // And the next real take-over works.
    let mut new = setup.start(&dir, "new", true, &[]);
    new.wait_log(&format!("accepting; process {} told to stop", old.pid()));
    held.expect_close(1012);
    drop(held);
    assert!(old.wait_exit().success(), "{}", old.log());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn take_over_with_no_server_to_take_over_from_fails_naming_the_socket() {
    let dir = temp_dir("nobody");
    let control = dir.join("nobody.sock");
    let addr = format!("127.0.0.1:{}", free_port());
    let mut lone = Proc::start(
        &dir,
        "lone",
        &[
            "--mode",
            "echo",
            "--listen",
            &addr,
            "--handoff-socket",
            control.to_str().unwrap(),
            "--take-over",
        ],
    );
    assert!(!lone.wait_exit().success());
    let log = lone.log();
    assert!(
        log.contains(&format!(
            "--take-over: cannot reach a running server at {}",
            control.display()
        )),
        "{log}"
    );
    // Nothing was bound.
    assert!(TcpStream::connect(&addr).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn systemd_is_told_each_new_main_process() {
    let dir = temp_dir("notify");
    // The service manager's notification socket, as systemd passes it (NOTIFY_SOCKET).
    let notify = dir.join("notify.sock");
    let manager = std::os::unix::net::UnixDatagram::bind(&notify).unwrap();
    manager.set_read_timeout(Some(patience() * 4)).unwrap();
    let said = || {
        let mut buf = [0u8; 256];
        let n = manager.recv(&mut buf).expect("a notification");
        String::from_utf8_lossy(&buf[..n]).into_owned()
    };
    let setup = Setup::new(&dir, "echo", &[]);
    let env = [("NOTIFY_SOCKET", notify.as_path())];
    let mut old = setup.start(&dir, "old", false, &env);
    assert_eq!(said(), format!("READY=1\nMAINPID={}\n", old.pid()));
    // Serving by then.
    let mut client = Client::connect(setup.addr);
    echo(&mut client, "ready");
    drop(client);
    let mut new = setup.start(&dir, "new", true, &env);
    assert_eq!(said(), format!("READY=1\nMAINPID={}\n", new.pid()));
    assert!(old.wait_exit().success(), "{}", old.log());
    new.wait_log("answering take-overs");
    let _ = std::fs::remove_dir_all(&dir);
}

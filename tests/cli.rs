//! The `ringws` binary: bad flags and a busy port fail at once with a message naming the cause;
//! SIGTERM stops it cleanly with exit code 0.

use std::net::TcpListener;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

fn ringws(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_ringws"))
        .args(args)
        .output()
        .expect("run ringws")
}

#[test]
fn bad_flags_name_the_flag() {
    for (args, flag) in [
        (&["--max-fragments", "0"][..], "--max-fragments"),
        (&["--recv-buffers", "3"][..], "--recv-buffers"),
        (&["--close-timeout", "soon"][..], "--close-timeout"),
        (&["--listen", "not-an-address"][..], "--listen"),
        (&["--mode", "nonsense"][..], "--mode"),
        (&["--text-heartbeat", "ping"][..], "--text-heartbeat"),
        (&["--tick", "5s"][..], "--tick"),
    ] {
        let out = ringws(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(flag), "{args:?}: {stderr}");
    }
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_ringws"))
        .args(["--listen", "127.0.0.1:0", "--workers", "2"])
        .stderr(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
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
        assert!(start.elapsed() < Duration::from_secs(5), "did not stop");
        std::thread::sleep(Duration::from_millis(20));
    }
}

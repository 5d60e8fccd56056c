//! Every flag reaches the configuration; defaults are the library's and the modes' own.

use super::*;
use ringws::proto::handshake::OriginPolicy;
use ringws::server::UringConfig;

/// What a command line configures: the server, the chat, the broker bridge.
struct Effective {
    server: ServerConfig,
    chat: ChatConfig,
    broker: Option<BrokerConfig>,
    api: Option<ringws::app::chat::api::ApiConfig>,
    logs: crate::logs::LogSettings,
    handoff: Option<super::HandoffSettings>,
}

fn effective(args: &[&str]) -> Effective {
    let cli = Cli::try_parse_from(std::iter::once("ringws").chain(args.iter().copied()))
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let mut server = cli.config();
    server.tls = cli.tls_config().unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let chat = cli
        .chat_config(&server)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"));
    Effective {
        logs: cli.logs(),
        broker: cli.broker_config(),
        api: cli.api_config(),
        handoff: cli.handoff(),
        server,
        chat,
    }
}

type Check = fn(&Effective) -> bool;

/// Every flag, with a value other than its default, and where it lands.
#[test]
fn every_flag_reaches_the_configuration() {
    let rows: &[(&[&str], Check)] = &[
        (&["--listen", "0.0.0.0:9100"], |e| {
            e.server.listen == "0.0.0.0:9100".parse().unwrap()
        }),
        (&["--workers", "3"], |e| e.server.workers == 3),
        (&["--log-format", "json"], |e| {
            e.logs.format == crate::logs::LogFormat::Json
        }),
        (&["--log-level", "debug"], |e| {
            e.logs.level == tracing::level_filters::LevelFilter::DEBUG
        }),
        (&["--pin"], |e| e.server.pin_workers),
        (&["--io", "epoll"], |e| e.server.io == IoChoice::Epoll),
        (&["--io", "uring"], |e| e.server.io == IoChoice::Uring),
        (&["--max-message-bytes", "1000"], |e| {
            let l = &e.server.proto.limits;
            (l.max_message_bytes, l.max_frame_bytes) == (1000, 1000)
        }),
        (
            &["--max-message-bytes", "1000", "--max-frame-bytes", "100"],
            |e| {
                let l = &e.server.proto.limits;
                (l.max_message_bytes, l.max_frame_bytes) == (1000, 100)
            },
        ),
        (&["--max-fragments", "7"], |e| {
            e.server.proto.limits.max_fragments == 7
        }),
        (&["--max-header-bytes", "4096"], |e| {
            e.server.proto.limits.max_header_bytes == 4096
        }),
        (&["--max-headers", "20"], |e| {
            e.server.proto.limits.max_headers == 20
        }),
        (&["--max-outbound-bytes", "5000"], |e| {
            e.server.max_outbound_bytes == 5000
        }),
        (&["--outbound-low-water", "1000"], |e| {
            e.server.outbound_low_water == 1000
        }),
        (&["--backpressure", "drop-oldest"], |e| {
            e.server.backpressure == Backpressure::DropOldest
        }),
        (&["--backpressure", "close"], |e| {
            e.server.backpressure == Backpressure::Close
        }),
        (&["--backpressure", "drop"], |e| {
            e.server.backpressure == Backpressure::DropNewest
        }),
        (&["--close-timeout", "750ms"], |e| {
            e.server.proto.close_timeout == Duration::from_millis(750)
        }),
        (&["--shutdown-timeout", "2m"], |e| {
            e.server.shutdown_timeout == Duration::from_secs(120)
        }),
        (&["--recv-buffers", "256"], |e| {
            e.server.uring.buf_entries == 256
        }),
        (&["--recv-buffer-size", "8192"], |e| {
            e.server.uring.buf_size == 8192
        }),
        (&["--handshake-timeout", "3s"], |e| {
            e.server.handshake_timeout == Duration::from_secs(3)
        }),
        (&["--ping-interval", "7s"], |e| {
            e.server.ping_interval == Some(Duration::from_secs(7))
        }),
        (&["--ping-interval", "0"], |e| {
            e.server.ping_interval.is_none()
        }),
        (&["--pong-timeout", "4s"], |e| {
            e.server.pong_timeout == Duration::from_secs(4)
        }),
        (&["--idle-timeout", "90s"], |e| {
            e.server.idle_timeout == Some(Duration::from_secs(90))
        }),
        (&["--text-heartbeat", "hb:ok", "--mode", "echo"], |e| {
            e.server.text_heartbeat == Some(("hb".into(), "ok".into()))
        }),
        (&["--tick", "50ms"], |e| {
            e.server.tick == Duration::from_millis(50)
        }),
        (&["--send-zc-min-bytes", "16384"], |e| {
            e.server.uring.send_zc_min_bytes == Some(16384)
        }),
        (&["--compression", "dedicated"], |e| {
            e.server.compression.mode == DeflateMode::Dedicated
        }),
        (&["--compression", "off"], |e| {
            e.server.compression.mode == DeflateMode::Off
        }),
        (&["--compression-level", "6"], |e| {
            e.server.compression.level == 6
        }),
        (&["--compression-min-bytes", "200"], |e| {
            e.server.compression.min_bytes == 200
        }),
        (&["--compression-window-bits", "12"], |e| {
            e.server.compression.server_max_window_bits == 12
        }),
        (&["--compression-client-window-bits", "9"], |e| {
            e.server.compression.client_max_window_bits == 9
        }),
        (&["--max-rooms", "3"], |e| e.chat.max_rooms == 3),
        (&["--max-text", "100"], |e| e.chat.max_text == 100),
        (&["--history-messages", "5"], |e| {
            e.chat.history.max_messages == 5
        }),
        (&["--history-bytes", "4096"], |e| {
            e.chat.history.max_bytes == 4096
        }),
        (&["--history-age", "90s"], |e| {
            e.chat.history.max_age == Duration::from_secs(90)
        }),
        (&["--history-total-bytes", "1000000"], |e| {
            e.chat.history.total_bytes == 1_000_000
        }),
        (&["--history-rooms", "10"], |e| {
            e.chat.history.max_rooms == 10
        }),
        (&["--history-page", "20"], |e| e.chat.history.page == 20),
        (&["--history-busy-bytes", "1000"], |e| {
            e.chat.history.busy_bytes == 1000
        }),
        (
            &[
                "--allow-origin",
                "https://a.example",
                "--allow-origin",
                "https://b.example",
            ],
            |e| {
                e.chat.origins
                    == OriginPolicy::allow_list(["https://a.example", "https://b.example"])
            },
        ),
        (&["--auth-token", "t0ken"], |e| e.chat.auth.is_some()),
        (&["--jwt-secret", "0123456789abcdef0123456789abcdef"], |e| {
            e.chat.tokens.as_ref().map(|t| t.algorithm()) == Some("HS256")
        }),
        (
            &[
                "--jwt-public-key",
                concat!(
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/data/jwt/es256-public.pem"
                ),
            ],
            |e| e.chat.tokens.as_ref().map(|t| t.algorithm()) == Some("ES256"),
        ),
        (
            &[
                "--jwt-secret",
                "0123456789abcdef0123456789abcdef",
                "--jwt-issuer",
                "auth.example",
                "--jwt-audience",
                "chat",
            ],
            |e| {
                let sign = |claims: serde_json::Value| {
                    jsonwebtoken::encode(
                        &jsonwebtoken::Header::default(),
                        &claims,
                        &jsonwebtoken::EncodingKey::from_secret(
                            b"0123456789abcdef0123456789abcdef",
                        ),
                    )
                    .unwrap()
                };
                let tokens = e.chat.tokens.as_ref().unwrap();
                let exp = 2_000_000_000u64;
                let with = sign(serde_json::json!(
                    {"sub": "a", "exp": exp, "iss": "auth.example", "aud": "chat"}
                ));
                let without = sign(serde_json::json!({"sub": "a", "exp": exp}));
                tokens.check(&with, 1).is_ok() && tokens.check(&without, 1).is_err()
            },
        ),
        (
            &[
                "--tls-cert",
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls/cert.pem"),
                "--tls-key",
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls/key.pem"),
            ],
            |e| e.server.tls.is_some(),
        ),
        (
            &[
                "--tls-cert",
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls/cert.pem"),
                "--tls-key",
                concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls/key.pem"),
                "--tls-sni",
                concat!(
                    "LocalHost=",
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/data/tls/cert.pem,",
                    env!("CARGO_MANIFEST_DIR"),
                    "/tests/data/tls/key.pem"
                ),
            ],
            |e| e.server.tls.is_some(),
        ),
        (&["--jwt-expiry-notice", "5s"], |e| {
            e.chat.expiry_notice == Duration::from_secs(5)
        }),
        (&["--send-rate", "7"], |e| e.chat.send_rate.per_second == 7),
        (&["--send-burst", "9"], |e| e.chat.send_rate.burst == 9),
        (&["--join-rate", "0"], |e| e.chat.join_rate.per_second == 0),
        (&["--join-burst", "3"], |e| e.chat.join_rate.burst == 3),
        (
            &[
                "--broker",
                "redis://127.0.0.1:6379",
                "--broker-presence-ttl",
                "3s",
            ],
            |e| {
                e.broker
                    .as_ref()
                    .and_then(|b| b.presence.as_ref())
                    .map(|p| p.ttl)
                    == Some(Duration::from_secs(3))
            },
        ),
        (&["--max-conns-per-ip", "20"], |e| {
            e.chat.max_conns_per_ip == 20
        }),
        (
            &[
                "--trusted-proxy",
                "10.0.0.0/8",
                "--trusted-proxy",
                "192.0.2.1",
            ],
            |e| {
                e.chat.trusted_proxies
                    == [
                        "10.0.0.0/8".parse().unwrap(),
                        "192.0.2.1/32".parse().unwrap(),
                    ]
            },
        ),
        (
            &["--api-listen", "127.0.0.1:9002", "--api-key", "k3y"],
            |e| {
                e.api
                    .as_ref()
                    .is_some_and(|a| a.key == "k3y" && a.listen.port() == 9002)
            },
        ),
        (&["--broker", "redis://127.0.0.1:6379"], |e| {
            e.broker
                .as_ref()
                .is_some_and(|b| b.channel_prefix == "ringws:room:")
        }),
        (
            &["--broker", "redis://h:1", "--broker-prefix", "eu:"],
            |e| e.broker.as_ref().is_some_and(|b| b.channel_prefix == "eu:"),
        ),
        (
            &[
                "--broker",
                "redis://h:1",
                "--broker-max-pending-bytes",
                "100000",
            ],
            |e| {
                e.broker
                    .as_ref()
                    .is_some_and(|b| b.max_pending_bytes == 100_000)
            },
        ),
        (&["--handoff-socket", "/run/ringws/handoff"], |e| {
            e.handoff.as_ref().is_some_and(|h| {
                h.socket == std::path::Path::new("/run/ringws/handoff")
                    && !h.take_over
                    && h.timeout == Duration::from_secs(30)
            })
        }),
        (&["--handoff-socket", "/h", "--take-over"], |e| {
            e.handoff.as_ref().is_some_and(|h| h.take_over)
        }),
        (
            &["--handoff-socket", "/h", "--handoff-timeout", "5s"],
            |e| {
                e.handoff
                    .as_ref()
                    .is_some_and(|h| h.timeout == Duration::from_secs(5))
            },
        ),
    ];
    for (args, check) in rows {
        assert!(
            check(&effective(args)),
            "{args:?} did not reach the configuration"
        );
    }
    // Each row's flag is one of the command line's, and every flag of the command line (but
    // --config, --mode and --huge-pages, which choose what runs rather than configure it:
    // tests/cli.rs starts the binary with them) has a row.
    use clap::CommandFactory;
    let listed: std::collections::HashSet<&str> = rows
        .iter()
        .flat_map(|(args, _)| args.iter().filter(|a| a.starts_with("--")))
        .map(|a| a.trim_start_matches("--"))
        .collect();
    for arg in Cli::command().get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if ["mode", "huge-pages"].contains(&long) || super::print::NOT_PRINTED.contains(&long) {
            continue;
        }
        assert!(listed.contains(long), "--{long} has no row");
    }
}

#[test]
fn defaults_are_the_librarys_and_the_modes_own() {
    let chat = effective(&[]);
    let library = ServerConfig::default();
    assert_eq!(chat.server.listen, library.listen);
    assert_eq!(chat.server.max_outbound_bytes, library.max_outbound_bytes);
    assert_eq!(chat.server.proto, library.proto);
    assert_eq!(chat.server.uring, UringConfig::default());
    // Chat mode: compression shared and the browser heartbeat (its interval half the ping
    // interval, told to clients in the welcome).
    assert_eq!(chat.server.compression.mode, DeflateMode::Shared);
    assert_eq!(
        chat.server.text_heartbeat,
        Some(("ping".into(), "pong".into()))
    );
    assert_eq!(
        chat.chat.heartbeat,
        Some(("ping".into(), "pong".into(), 15_000))
    );
    assert!(chat.broker.is_none());
    let echo = effective(&["--mode", "echo"]);
    assert_eq!(echo.server.compression.mode, DeflateMode::Off);
    assert_eq!(echo.server.text_heartbeat, None);
}

#[test]
fn the_auth_token_is_checked_in_the_query_and_as_a_bearer() {
    use ringws::proto::handshake::{Request, UpgradeRequest};
    let e = effective(&["--auth-token", "s3cret"]);
    let hook = e.chat.auth.expect("a hook");
    let decide = |path: &str, auth: Option<&str>| {
        let header = auth.map_or(String::new(), |v| format!("Authorization: {v}\r\n"));
        let head = format!(
            "GET {path} HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
             Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\
             {header}\r\n"
        );
        let limits = ringws::proto::Limits::default();
        let Ok(Request::Upgrade(req)) = Request::parse(head.as_bytes(), &limits) else {
            panic!("not an upgrade")
        };
        let req: &UpgradeRequest<'_> = &req;
        hook(req).map(drop).map_err(|(status, _)| status)
    };
    assert_eq!(decide("/ws?token=s3cret", None), Ok(()));
    assert_eq!(decide("/ws?room=a&token=s3cret", None), Ok(()));
    assert_eq!(decide("/ws", Some("Bearer s3cret")), Ok(()));
    assert_eq!(decide("/ws", None), Err(401));
    assert_eq!(decide("/ws?token=s3cre", None), Err(401));
    assert_eq!(decide("/ws?token=s3cretx", None), Err(401));
    assert_eq!(decide("/ws?xtoken=s3cret", None), Err(401));
    assert_eq!(decide("/ws", Some("Bearer wrong")), Err(401));
    assert_eq!(decide("/ws", Some("Basic s3cret")), Err(401));
    assert_eq!(decide("/ws", Some("s3cret")), Err(401));
}

/// `--print-config` of `args` (and of a `--config` file's namespaces).
fn printed(args: &[&str]) -> String {
    let argv: Vec<std::ffi::OsString> = std::iter::once("ringws")
        .chain(args.iter().copied())
        .map(Into::into)
        .collect();
    let options = crate::config_file::read(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    let cli = Cli::try_parse_from(options.args).unwrap_or_else(|e| panic!("{args:?}: {e}"));
    cli.print_config(&options.namespaces)
        .unwrap_or_else(|e| panic!("{args:?}: {e}"))
}

#[test]
fn print_config_names_every_option_and_reads_back_unchanged() {
    let dir = std::env::temp_dir().join(format!("ringws-print-config-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let pem = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls/cert.pem");
    let key = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/tls/key.pem");
    let sni = format!("one.test={pem},{key}");
    let file = dir.join("rules.toml");
    std::fs::write(
        &file,
        "max-rooms = 7\n[[namespace]]\nprefix = \"news:\"\nsend = \"nobody\"\nmax-text = 100\n",
    )
    .unwrap();
    let file = file.to_str().unwrap();
    // Between them every option is set (--auth-token, --jwt-secret and --jwt-public-key
    // exclude each other).
    let runs: [Vec<&str>; 3] = [
        vec![
            "--config",
            file,
            "--mode",
            "echo",
            "--workers",
            "3",
            "--pin",
            "--io",
            "epoll",
            "--log-format",
            "json",
            "--log-level",
            "debug",
            "--max-message-bytes",
            "1000",
            "--max-frame-bytes",
            "500",
            "--idle-timeout",
            "90s",
            "--text-heartbeat",
            "hi:ho",
            "--send-zc-min-bytes",
            "4096",
            "--huge-pages",
            "--compression",
            "dedicated",
            "--allow-origin",
            "https://a.example",
            "--allow-origin",
            "https://b.example",
            "--auth-token",
            "t0ken",
            "--tls-cert",
            pem,
            "--tls-key",
            key,
            "--tls-sni",
            &sni,
            "--trusted-proxy",
            "10.0.0.0/8",
            "--api-listen",
            "127.0.0.1:9100",
            "--api-key",
            "k3y",
            "--broker",
            "redis://127.0.0.1:6379",
            "--broker-prefix",
            "x",
            "--broker-presence-ttl",
            "3s",
            "--broker-max-pending-bytes",
            "100000",
            "--ping-interval",
            "0",
            "--close-timeout",
            "1500ms",
            "--handoff-socket",
            "/run/ringws/handoff",
            "--handoff-timeout",
            "10s",
        ],
        vec![
            "--jwt-secret",
            "0123456789abcdef0123456789abcdef",
            "--jwt-issuer",
            "auth",
            "--jwt-audience",
            "chat",
        ],
        vec![
            "--jwt-public-key",
            concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/data/jwt/es256-public.pem"
            ),
        ],
    ];
    let mut keys = std::collections::HashSet::new();
    for args in &runs {
        let first = printed(args);
        let table: toml::Table = first.parse().unwrap();
        keys.extend(table.keys().cloned());
        // Read back: the same configuration, printed the same.
        let again = dir.join("again.toml");
        std::fs::write(&again, &first).unwrap();
        let second = printed(&["--config", again.to_str().unwrap()]);
        assert_eq!(first, second, "{args:?}");
    }
    let full = printed(&runs[0]);
    for line in [
        "workers = 3",
        "mode = \"echo\"",
        "max-rooms = 7",
        "max-frame-bytes = 500",
        "max-message-bytes = 1000",
        "ping-interval = \"0s\"",
        "close-timeout = \"1500ms\"",
        "prefix = \"news:\"",
        "send = \"nobody\"",
        "max-text = 100",
        "keep it private",
    ] {
        assert!(full.contains(line), "{line} missing:\n{full}");
    }
    use clap::CommandFactory;
    for arg in Cli::command().get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        assert!(
            keys.contains(long) || super::print::NOT_PRINTED.contains(&long),
            "--{long} is never printed"
        );
    }
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_example_config_is_tuning_ringws_toml_names_every_option_and_reads_back() {
    let example = super::example_config();
    assert_eq!(
        example,
        include_str!("../../../../tuning/ringws.toml"),
        "tuning/ringws.toml is out of date: cargo run -- --print-example-config > tuning/ringws.toml"
    );
    use clap::CommandFactory;
    for arg in Cli::command().get_arguments() {
        let Some(long) = arg.get_long() else { continue };
        if !super::print::NOT_PRINTED.contains(&long) {
            assert!(
                example.contains(&format!("\n# {long} = ")),
                "--{long} missing"
            );
        }
    }
    // Uncommented (all but the placeholders), it is the defaults: the same configuration.
    let uncommented: String = example
        .lines()
        .filter_map(|l| l.strip_prefix("# "))
        .filter(|l| {
            let key = l.split_once(" = ").map_or("", |(k, _)| k);
            let is_key =
                !key.is_empty() && key.bytes().all(|b| b.is_ascii_lowercase() || b == b'-');
            (is_key && !l.contains('<')) || l.starts_with("[[namespace]]")
        })
        .map(|l| format!("{l}\n"))
        .collect();
    let dir = std::env::temp_dir().join(format!("ringws-example-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("ringws.toml");
    std::fs::write(&file, &uncommented).unwrap();
    let from_file = printed(&["--config", file.to_str().unwrap()]);
    let defaults = printed(&[]);
    let _ = std::fs::remove_dir_all(&dir);
    // The file adds the example namespace; everything else is the defaults.
    let (options, rules) = from_file
        .split_once("[[namespace]]")
        .expect("the namespace");
    assert_eq!(options.trim_end(), defaults.trim_end(), "{uncommented}");
    assert!(rules.contains("prefix = \"news:\""), "{rules}");
}

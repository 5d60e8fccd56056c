//! `--print-config`: the effective configuration (the library's defaults, the `--config` file
//! and the flags merged) as TOML that `--config` reads back to the same configuration: every
//! option with its value, the long flag names as keys; an option that is off or unset (no TLS,
//! no broker, no idle timeout) is left out, as it would be left out of a file.

use std::time::Duration;

use clap::ValueEnum;
use toml::Value;

use super::{BackpressureArg, Cli, CompressionArg};
use ringws::proto::deflate::Mode as DeflateMode;
use ringws::server::{Backpressure, IoChoice};

/// The flags that are never printed: they choose what runs rather than configure it.
pub(super) const NOT_PRINTED: [&str; 7] = [
    "config",
    // An action of one start, not a setting: a file that says it would take over every time.
    "take-over",
    "print-config",
    "print-example-config",
    "print-man-page",
    "help",
    "version",
];

/// A duration as the flags write it: `500ms`, `5s`.
fn duration(d: Duration) -> Value {
    let ms = d.as_millis();
    Value::String(if ms % 1000 == 0 {
        format!("{}s", ms / 1000)
    } else {
        format!("{ms}ms")
    })
}

/// A value's name as its flag takes it (`drop-newest`).
fn name(v: &impl ValueEnum) -> Value {
    Value::String(
        v.to_possible_value()
            .map(|p| p.get_name().to_owned())
            .unwrap_or_default(),
    )
}

fn int(n: impl Into<i128>) -> Value {
    Value::Integer(i64::try_from(n.into()).unwrap_or(i64::MAX))
}

fn text(s: impl ToString) -> Value {
    Value::String(s.to_string())
}

fn list<T>(items: &[T], f: impl Fn(&T) -> Value) -> Option<Value> {
    (!items.is_empty()).then(|| Value::Array(items.iter().map(f).collect()))
}

impl Cli {
    /// The effective configuration as TOML.
    ///
    /// # Errors
    /// What starting with these options would refuse (a JWT key that cannot be used, ...),
    /// with the flag's name.
    pub(crate) fn print_config(
        &self,
        namespaces: &[ringws::app::chat::rules::Namespace],
    ) -> Result<String, String> {
        let server = self.config();
        let chat = self.chat_config(&server)?;
        let logs = self.logs();
        let limits = &server.proto.limits;
        let z = &server.compression;
        let broker = self.broker_config();
        let io = match server.io {
            IoChoice::Auto => super::IoArg::Auto,
            IoChoice::Uring => super::IoArg::Uring,
            IoChoice::Epoll => super::IoArg::Epoll,
        };
        let backpressure = match server.backpressure {
            Backpressure::DropNewest => BackpressureArg::DropNewest,
            Backpressure::DropOldest => BackpressureArg::DropOldest,
            Backpressure::Close => BackpressureArg::Close,
        };
        let compression = match z.mode {
            DeflateMode::Off => CompressionArg::Off,
            DeflateMode::Shared => CompressionArg::Shared,
            DeflateMode::Dedicated => CompressionArg::Dedicated,
        };
        let path = |p: &Option<std::path::PathBuf>| p.as_ref().map(|p| text(p.display()));
        let rows: Vec<(&str, Option<Value>)> = vec![
            ("listen", Some(text(server.listen))),
            ("workers", Some(int(server.workers as u64))),
            ("pin", Some(Value::Boolean(server.pin_workers))),
            ("io", Some(name(&io))),
            ("mode", Some(name(&self.mode))),
            ("log-format", Some(name(&logs.format))),
            (
                "log-level",
                Some(text(logs.level.to_string().to_lowercase())),
            ),
            ("max-message-bytes", Some(int(limits.max_message_bytes))),
            ("max-frame-bytes", Some(int(limits.max_frame_bytes))),
            ("max-fragments", Some(int(limits.max_fragments))),
            (
                "max-header-bytes",
                Some(int(limits.max_header_bytes as u64)),
            ),
            ("max-headers", Some(int(limits.max_headers as u64))),
            (
                "max-outbound-bytes",
                Some(int(server.max_outbound_bytes as u64)),
            ),
            (
                "outbound-low-water",
                Some(int(server.outbound_low_water as u64)),
            ),
            ("backpressure", Some(name(&backpressure))),
            ("close-timeout", Some(duration(server.proto.close_timeout))),
            ("shutdown-timeout", Some(duration(server.shutdown_timeout))),
            ("recv-buffers", Some(int(server.uring.buf_entries))),
            ("recv-buffer-size", Some(int(server.uring.buf_size))),
            (
                "handshake-timeout",
                Some(duration(server.handshake_timeout)),
            ),
            (
                "ping-interval",
                Some(duration(server.ping_interval.unwrap_or(Duration::ZERO))),
            ),
            ("pong-timeout", Some(duration(server.pong_timeout))),
            ("idle-timeout", server.idle_timeout.map(duration)),
            (
                "text-heartbeat",
                server
                    .text_heartbeat
                    .as_ref()
                    .map(|(ping, pong)| text(format!("{ping}:{pong}"))),
            ),
            ("tick", Some(duration(server.tick))),
            ("send-zc-min-bytes", server.uring.send_zc_min_bytes.map(int)),
            ("huge-pages", Some(Value::Boolean(self.huge_pages))),
            ("compression", Some(name(&compression))),
            ("compression-level", Some(int(z.level))),
            ("compression-min-bytes", Some(int(z.min_bytes as u64))),
            (
                "compression-window-bits",
                Some(int(z.server_max_window_bits)),
            ),
            (
                "compression-client-window-bits",
                Some(int(z.client_max_window_bits)),
            ),
            ("max-rooms", Some(int(chat.max_rooms as u64))),
            ("max-text", Some(int(chat.max_text as u64))),
            (
                "history-messages",
                Some(int(chat.history.max_messages as u64)),
            ),
            ("history-bytes", Some(int(chat.history.max_bytes as u64))),
            ("history-age", Some(duration(chat.history.max_age))),
            (
                "history-total-bytes",
                Some(int(chat.history.total_bytes as u64)),
            ),
            ("history-rooms", Some(int(chat.history.max_rooms as u64))),
            ("history-page", Some(int(chat.history.page as u64))),
            (
                "history-busy-bytes",
                Some(int(chat.history.busy_bytes as u64)),
            ),
            ("allow-origin", list(&self.allow_origin, |o| text(o))),
            ("auth-token", self.auth_token.as_ref().map(text)),
            ("jwt-secret", self.jwt_secret.as_ref().map(text)),
            ("jwt-public-key", path(&self.jwt_public_key)),
            ("jwt-issuer", self.jwt_issuer.as_ref().map(text)),
            ("jwt-audience", self.jwt_audience.as_ref().map(text)),
            ("jwt-expiry-notice", Some(duration(chat.expiry_notice))),
            ("send-rate", Some(int(chat.send_rate.per_second))),
            ("send-burst", Some(int(chat.send_rate.burst))),
            ("join-rate", Some(int(chat.join_rate.per_second))),
            ("join-burst", Some(int(chat.join_rate.burst))),
            ("max-conns-per-ip", Some(int(chat.max_conns_per_ip))),
            ("trusted-proxy", list(&self.trusted_proxy, |n| text(n))),
            ("tls-cert", path(&self.tls_cert)),
            ("tls-key", path(&self.tls_key)),
            (
                "tls-sni",
                list(&self.tls_sni, |n| {
                    text(format!(
                        "{}={},{}",
                        n.name,
                        n.cert.display(),
                        n.key.display()
                    ))
                }),
            ),
            ("api-listen", self.api_listen.map(text)),
            ("api-key", self.api_key.as_ref().map(text)),
            ("broker", self.broker.as_ref().map(text)),
            (
                "broker-prefix",
                broker.as_ref().map(|b| text(&b.channel_prefix)),
            ),
            (
                "broker-presence-ttl",
                broker
                    .as_ref()
                    .and_then(|b| b.presence.as_ref())
                    .map(|p| duration(p.ttl)),
            ),
            (
                "broker-max-pending-bytes",
                broker.as_ref().map(|b| int(b.max_pending_bytes as u64)),
            ),
            ("handoff-socket", path(&self.handoff_socket)),
            (
                "handoff-timeout",
                self.handoff().map(|h| duration(h.timeout)),
            ),
        ];
        let mut table = toml::Table::new();
        for (key, value) in rows {
            if let Some(value) = value {
                table.insert(key.to_owned(), value);
            }
        }
        if !namespaces.is_empty() {
            let tables = namespaces
                .iter()
                .map(Value::try_from)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("--config: [[namespace]]: {e}"))?;
            table.insert("namespace".to_owned(), Value::Array(tables));
        }
        let secrets = ["auth-token", "jwt-secret", "api-key", "broker"]
            .iter()
            .any(|k| table.contains_key(*k));
        let mut out = String::from(
            "# ringws: the effective configuration (defaults, --config file and flags merged);\n\
             # `ringws --config FILE` reads it back. Options that are off are left out.\n",
        );
        if secrets {
            out.push_str(
                "# It holds the secrets given (tokens, keys, the broker's URL): keep it private.\n",
            );
        }
        out.push_str(&table.to_string());
        Ok(out)
    }
}

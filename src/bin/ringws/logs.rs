//! Where the log goes and how it looks: `--log-format text|json`, `--log-level`, colour only
//! for a person at a terminal.
//!
//! - Lines go to stderr (journald and container runtimes collect it; stdout stays free).
//! - `text`: one line per event for people; colour escapes only when stderr is a terminal and
//!   `NO_COLOR` is unset or empty (<https://no-color.org>), so a file or journald gets none.
//! - `json`: one JSON object per line (tracing-subscriber's formatter): `timestamp`, `level`,
//!   `message` and the event's fields (`worker`, `peer`, `conn`, `code`, `reason`, ...) at the
//!   top level, for Loki, Elasticsearch or `jq`.
//! - The level: `--log-level` (default `info`); `RUST_LOG`, when set, wins (with its
//!   per-module directives).

use std::io::IsTerminal;

use clap::ValueEnum;
use tracing::level_filters::LevelFilter;
use tracing_subscriber::EnvFilter;

/// `--log-format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum LogFormat {
    /// One line per event, for people.
    Text,
    /// One JSON object per line, for log stores.
    Json,
}

/// What the flags say about the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LogSettings {
    pub(crate) format: LogFormat,
    /// The least severe level logged.
    pub(crate) level: LevelFilter,
}

/// Whether text lines get colour: stderr is a terminal and `NO_COLOR` is unset or empty.
fn colour(no_color: Option<&std::ffi::OsStr>) -> bool {
    std::io::stderr().is_terminal() && no_color.is_none_or(|v| v.is_empty())
}

/// Installs the process's subscriber.
pub(crate) fn init(settings: &LogSettings) {
    let filter = EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| EnvFilter::default().add_directive(settings.level.into()));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false);
    match settings.format {
        LogFormat::Text => builder
            .with_ansi(colour(std::env::var_os("NO_COLOR").as_deref()))
            .init(),
        LogFormat::Json => builder
            .json()
            .flatten_event(true)
            .with_current_span(false)
            .with_span_list(false)
            .init(),
    }
}

/// `--log-level`: `off`, `error`, `warn`, `info`, `debug` or `trace` (per-module filters are
/// `RUST_LOG`'s).
pub(crate) fn parse_level(s: &str) -> Result<LevelFilter, String> {
    // (tracing reads an empty string as `off`: here it is a mistake.)
    s.parse::<LevelFilter>()
        .ok()
        .filter(|_| !s.trim().is_empty())
        .ok_or_else(|| format!("'{s}' is not a level: off, error, warn, info, debug or trace"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_colour_unless_a_terminal_and_no_color_unset() {
        // The test's stderr is captured (not a terminal) under `cargo test`.
        if !std::io::stderr().is_terminal() {
            assert!(!colour(None));
        }
        assert!(!colour(Some(std::ffi::OsStr::new("1"))));
    }

    #[test]
    fn levels_parse_and_nonsense_does_not() {
        assert_eq!(parse_level("debug"), Ok(LevelFilter::DEBUG));
        assert_eq!(parse_level("WARN"), Ok(LevelFilter::WARN));
        assert_eq!(parse_level("off"), Ok(LevelFilter::OFF));
        for bad in ["loud", "ringws=debug", ""] {
            assert!(parse_level(bad).is_err(), "{bad}");
        }
    }
}

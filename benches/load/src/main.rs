//! `ringws-load`: the load generator of the ringws benchmarks, run against ringws and its peer
//! servers on this machine (see `benches/compare.sh`).
//!
//! One thread, one mio event loop, non-blocking sockets with TCP_NODELAY. The handshake is done
//! by hand; frames are parsed by the ringws protocol core in the client role and sent masked,
//! each in one `write`.
//!
//! | module | concept |
//! |---|---|
//! | [`cli`] | the command line |
//! | [`target`] | the `ws://` URL or address to load |
//! | [`handshake`] | the upgrade request and the checks on the response |
//! | [`verify`] | the messages sent and the byte-for-byte check of their echoes |
//! | [`raw`] | `--raw-echo`: echoes of the frames as sent (the floor), checked byte for byte |
//! | [`client`] | one connection: socket, phase, protocol state, output buffer |
//! | [`engine`] | the event loop driving every connection |
//! | [`broadcast`] | the broadcast plan, its chat requests, the check of each delivery |
//! | [`recover`] | the reconnect storm: members resuming a room's history at once |
//! | [`run`](mod@run) | the ping-pong, pipelined, flood, broadcast and idle runs: phases and sampling |
//! | [`server`] | the server process's CPU time and RSS from `/proc` |
//! | [`stats`] | counters, latency percentiles, spreads over runs |
//! | [`report`] | one run's result as JSON or a table |
//! | [`summarize`] | many runs' results as a Markdown table |
//! | [`rng`] | keys and mask seeds |

mod api;
mod broadcast;
mod cli;
mod client;
mod deflate;
mod engine;
mod handshake;
mod inbox;
mod raw;
mod recover;
mod report;
mod rng;
mod run;
mod server;
mod stats;
mod summarize;
mod target;
mod verify;

use std::io::Read;
use std::process::ExitCode;

use clap::Parser;
use ringws::proto::connection::MessageKind;

use crate::cli::{Cli, Command, Common, PingPongArgs, seconds};
use crate::report::Report;
use crate::run::Load;
use crate::verify::Payload;

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(e) => {
            eprintln!("ringws-load: {e}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Pingpong(a) => messages(&a, Load::PingPong),
        Command::Pipelined(a) => {
            if a.depth == 0 {
                return Err("--depth must be at least 1".to_string());
            }
            messages(&a.messages, Load::Pipelined(a.depth))
        }
        Command::Flood(a) => messages(&a, Load::Flood),
        Command::Broadcast(a) => {
            let plan = a.plan()?;
            let mut setup = a.common.setup()?;
            setup.connections = plan.connections();
            if let Some(addr) = &a.publish_addr {
                let mut t =
                    target::Target::from_addr(addr).map_err(|e| format!("--publish-addr: {e}"))?;
                t.compress = setup.target.compress;
                setup.publish_target = Some(t);
            }
            setup.publish_api = a.publish_api.zip(a.api_key.clone());
            let every = a
                .every
                .map(seconds)
                .transpose()
                .map_err(|e| format!("--every {e}"))?
                .filter(|d| !d.is_zero());
            let report = run::broadcast(
                &setup,
                plan,
                run::Phases {
                    warmup: seconds(a.warmup)?,
                    duration: seconds(a.duration)?,
                    drain: seconds(a.drain)?,
                    every,
                },
                a.strict,
            )
            .map_err(|e| e.to_string())?;
            Ok(finish(report, &a.common))
        }
        Command::Idle(a) => {
            let setup = a.common.setup()?;
            let sample_at = a.sample_at()?;
            let report = run::idle(
                &setup,
                seconds(a.duration)?,
                a.ping_interval,
                a.ready_file.as_deref(),
                sample_at,
                a.rooms,
                a.abort,
            )
            .map_err(|e| e.to_string())?;
            Ok(finish(report, &a.common))
        }
        Command::Recover(a) => {
            let target = |u: &str| target::Target::from_url(u);
            let members_at = a
                .urls
                .iter()
                .map(|u| target(u))
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| format!("--url {e}"))?;
            let publisher_at = match &a.publish_url {
                Some(u) => target(u).map_err(|e| format!("--publish-url {e}"))?,
                None => members_at[0].clone(),
            };
            let storm = recover::Storm {
                members_at,
                publisher_at,
                members: a.members,
                behind: a.behind,
                room: a.room.clone(),
                probes: a
                    .pid
                    .iter()
                    .map(|(name, pid)| (name.clone(), server::Probe { pid: *pid }))
                    .collect(),
                timeout: seconds(a.timeout)?,
            };
            let report = recover::run(&storm)?;
            if a.json {
                println!("{}", report.to_json(a.label.as_deref()));
            } else {
                print!("{}", report.to_table());
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Summarize(a) => {
            let text = if a.file.as_os_str() == "-" {
                let mut s = String::new();
                std::io::stdin()
                    .read_to_string(&mut s)
                    .map_err(|e| e.to_string())?;
                s
            } else {
                std::fs::read_to_string(&a.file)
                    .map_err(|e| format!("{}: {e}", a.file.display()))?
            };
            print!("{}", summarize::markdown(&text, &a.baseline, &a.versus));
            Ok(ExitCode::SUCCESS)
        }
    }
}

/// Runs a message load with `a`'s options.
fn messages(a: &PingPongArgs, load: Load) -> Result<ExitCode, String> {
    let mut setup = a.common.setup()?;
    if a.raw_echo && (a.common.compress || setup.target.tls.is_some()) {
        return Err("--raw-echo is for a plain server: not with --compress or TLS".to_string());
    }
    if a.raw_echo && matches!(load, Load::Flood) {
        // The frames sent are kept until echoed, and flood bounds nothing in flight.
        return Err(
            "--raw-echo needs a bounded number of messages in flight: pingpong or \
                    pipelined, not flood"
                .to_string(),
        );
    }
    setup.target.raw_echo = a.raw_echo;
    let kind = if a.binary {
        MessageKind::Binary
    } else {
        MessageKind::Text
    };
    let report = run::messages(
        &setup,
        load,
        if a.chat_json {
            Payload::chat()
        } else {
            Payload::new(a.size, kind)
        },
        seconds(a.warmup)?,
        seconds(a.duration)?,
    )
    .map_err(|e| e.to_string())?;
    Ok(finish(report, &a.common))
}

/// Prints the report; the exit code is non-zero if the run had any error.
fn finish(mut report: Report, common: &Common) -> ExitCode {
    report.label = common.label.clone();
    report.scenario = common.scenario.clone();
    if common.json {
        println!("{}", report.to_json());
    } else {
        print!("{}", report.to_table());
    }
    if report.failed() {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

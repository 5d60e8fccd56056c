//! Turns the JSON lines of many runs into one Markdown table: per scenario and server, the
//! median [min–max] of throughput, server CPU per message and idle memory per connection (and,
//! for idle runs with `--sample-at`, the memory slope per connection between the two counts),
//! with ratios against a baseline server when it ran. Broadcast runs get a table of their own
//! (after the first, which is left out when only broadcast runs were read): deliveries and
//! publications per second, server CPU per delivery, deliveries per server CPU-second,
//! latency p50 and p99, messages lost.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::stats::Spread;

/// The figures of one (scenario, server) over its repetitions.
#[derive(Debug, Default, Clone)]
struct Cell {
    rate: Vec<f64>,
    cpu: Vec<f64>,
    rss: Vec<f64>,
    slope: Vec<f64>,
    /// `--compress`: the server's compression ratio (inflated ÷ compressed).
    ratio: Vec<f64>,
    /// Broadcast: publications per second.
    publishes: Vec<f64>,
    /// Broadcast: deliveries per server CPU-second.
    per_cpu: Vec<f64>,
    /// Broadcast: latency p50 and p99, µs.
    p50: Vec<f64>,
    p99: Vec<f64>,
    /// Broadcast: messages lost, over the runs.
    lost: u64,
    /// Idle: `rate` and `cpu` are the setup's (connections per second, CPU per connection).
    setup: bool,
    runs: usize,
    errors: u64,
}

/// Per (scenario, server) cells, with the scenarios and servers in the order first seen.
#[derive(Debug, Default)]
struct Table {
    scenarios: Vec<String>,
    servers: Vec<String>,
    cells: BTreeMap<(usize, usize), Cell>,
}

impl Table {
    fn cell(&mut self, v: &Value) -> &mut Cell {
        let name = |k: &str| v.get(k).and_then(Value::as_str).map(str::to_string);
        let scenario = name("scenario").unwrap_or_else(|| name("mode").unwrap_or_default());
        let server = name("label").unwrap_or_else(|| name("addr").unwrap_or_default());
        let si = index_of(&mut self.scenarios, scenario);
        let vi = index_of(&mut self.servers, server);
        let cell = self.cells.entry((si, vi)).or_default();
        cell.runs += 1;
        cell.errors += v["errors"]["total"].as_u64().unwrap_or(0);
        cell
    }
}

/// The Markdown table for `lines` (one JSON object each; other lines are skipped).
pub fn markdown(lines: &str, baseline: &str, versus: &[String]) -> String {
    let mut table = Table::default();
    let mut bcast = Table::default();
    for line in lines.lines() {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        match v["mode"].as_str() {
            Some("broadcast") => {
                let cell = bcast.cell(&v);
                cell.rate.extend(v["deliveries_per_sec"].as_f64());
                cell.cpu.extend(v["server_cpu_us_per_delivery"].as_f64());
                cell.publishes.extend(v["publishes_per_sec"].as_f64());
                cell.per_cpu.extend(v["deliveries_per_cpu_sec"].as_f64());
                cell.p50.extend(v["latency_us"]["p50"].as_f64());
                cell.p99.extend(v["latency_us"]["p99"].as_f64());
                cell.lost += v["lost"].as_u64().unwrap_or(0);
            }
            Some("idle") => {
                let cell = table.cell(&v);
                cell.rss.extend(v["rss_per_conn_bytes"].as_f64());
                cell.slope.extend(v["rss_slope_per_conn"].as_f64());
                // The setup as the rate and CPU (a handshake benchmark), where measured.
                if let Some(cpu) = v["setup_server_cpu_us_per_conn"].as_f64() {
                    cell.rate.extend(v["setup_conns_per_sec"].as_f64());
                    cell.cpu.push(cpu);
                    cell.setup = true;
                }
            }
            _ => {
                let cell = table.cell(&v);
                cell.rate.extend(v["msgs_per_sec"].as_f64());
                cell.cpu.extend(v["server_cpu_us_per_msg"].as_f64());
                // Message loads: RSS growth per connection that exchanged messages.
                cell.rss.extend(v["rss_per_conn_bytes"].as_f64());
                cell.ratio.extend(v["compression_ratio"].as_f64());
            }
        }
    }
    let mut out = String::new();
    if !table.cells.is_empty() || bcast.cells.is_empty() {
        out.push_str(&messages_table(&table, baseline));
        out.push_str(&versus_table(&table, baseline, versus, "message"));
    }
    if !bcast.cells.is_empty() {
        if !out.is_empty() {
            out.push('\n');
        }
        out.push_str(&broadcast_table(&bcast, baseline));
        out.push_str(&versus_table(&bcast, baseline, versus, "delivery"));
    }
    out
}

/// The table of the message and idle runs.
fn messages_table(table: &Table, baseline: &str) -> String {
    let Table {
        scenarios,
        servers,
        cells,
    } = table;
    let base = servers.iter().position(|s| s == baseline);
    let mut out = String::from(
        "| scenario | server | runs | msg/s median [min–max] | server CPU µs/msg median [min–max] \
         | RSS B/conn median [min–max] | errors |",
    );
    if base.is_some() {
        out.push_str(&format!(" vs {baseline} |"));
    }
    out.push_str("\n|---|---|---|---|---|---|---|");
    if base.is_some() {
        out.push_str("---|");
    }
    out.push('\n');
    for (si, scenario) in scenarios.iter().enumerate() {
        for (vi, server) in servers.iter().enumerate() {
            let Some(cell) = cells.get(&(si, vi)) else {
                continue;
            };
            let rate = Spread::of(&cell.rate);
            let cpu = Spread::of(&cell.cpu);
            let mut rss = fmt_spread(Spread::of(&cell.rss), |x| format!("{x:.0}"));
            if let Some(slope) = Spread::of(&cell.slope) {
                rss.push_str(&format!(
                    ", slope {}",
                    fmt_spread(Some(slope), |x| format!("{x:.0}"))
                ));
            }
            out.push_str(&format!(
                "| {scenario} | {server} | {} | {} | {} | {rss} | {} |",
                cell.runs,
                fmt_spread(rate, fmt_rate),
                fmt_spread(cpu, |x| format!("{x:.2}")),
                cell.errors
            ));
            if let Some(b) = base {
                let bc = cells.get(&(si, b));
                out.push_str(&format!(" {} |", ratios(cell, bc)));
            }
            out.push('\n');
        }
    }
    if cells.values().any(|c| c.setup) {
        out.push_str(
            "\nIdle rows: msg/s is connections set up per second, CPU µs/msg the server's CPU \
             per connection set up (TCP, TLS and WebSocket handshakes).\n",
        );
    }
    if cells.values().any(|c| !c.slope.is_empty()) {
        out.push_str(
            "\nRSS B/conn: the server's RSS growth from before connecting to the end of the hold \
             (idle) or of the window (message loads: connections that exchanged messages), per \
             connection; \"slope\": its growth per connection between the two connection \
             counts of a --sample-at run (no fixed cost, and less of the allocator's page steps).\n",
        );
    }
    let mut ratios = String::new();
    for ((si, vi), cell) in cells.iter() {
        if let Some(r) = Spread::of(&cell.ratio) {
            ratios.push_str(&format!(
                "\n- {} / {}: {}",
                scenarios[*si],
                servers[*vi],
                fmt_spread(Some(r), |x| format!("{x:.2}×"))
            ));
        }
    }
    if !ratios.is_empty() {
        out.push_str(
            "\npermessage-deflate (`--compress`): the server's messages, inflated ÷ compressed \
             bytes (1.00×: nothing compressed)",
        );
        out.push_str(&ratios);
        out.push('\n');
    }
    out
}

/// The baseline's server CPU per `unit` (message, or broadcast delivery) over each of
/// `versus`'s, per scenario where the baseline ran, as the spread of the ratios of the runs made
/// one after the other (on a shared machine whose speed drifts, a pair of neighbouring runs
/// shares its moment): how far the baseline is from the floor, from a peer, or from the build
/// before a change. Empty when none of `versus` ran.
fn versus_table(table: &Table, baseline: &str, versus: &[String], unit: &str) -> String {
    let index = |name: &str| table.servers.iter().position(|s| s == name);
    let Some(base) = index(baseline) else {
        return String::new();
    };
    let others: Vec<(&String, usize)> = versus
        .iter()
        .filter_map(|v| index(v).map(|i| (v, i)))
        .collect();
    if others.is_empty() {
        return String::new();
    }
    let mut out = format!(
        "\n{baseline}'s server CPU per {unit} ÷ each server's, run by run (the k-th run of \
         each, one after the other): median [min–max]\n\n| scenario |"
    );
    for (name, _) in &others {
        out.push_str(&format!(" ÷ {name} |"));
    }
    out.push_str("\n|---|");
    out.push_str(&"---|".repeat(others.len()));
    out.push('\n');
    for (si, scenario) in table.scenarios.iter().enumerate() {
        let Some(b) = table.cells.get(&(si, base)) else {
            continue;
        };
        out.push_str(&format!("| {scenario} |"));
        for (_, vi) in &others {
            let paired = table.cells.get(&(si, *vi)).and_then(|c| {
                // The k-th runs of two servers ran one after the other (the reps interleave):
                // each pair shares the machine's state of the moment.
                let ratios: Vec<f64> = b
                    .cpu
                    .iter()
                    .zip(&c.cpu)
                    .filter(|(_, o)| **o != 0.0)
                    .map(|(b, o)| b / o)
                    .collect();
                Spread::of(&ratios)
            });
            out.push_str(&match paired {
                Some(r) if r.min == r.max => format!(" ×{:.2} |", r.median),
                Some(r) => format!(" ×{:.2} [{:.2}–{:.2}] |", r.median, r.min, r.max),
                None => " — |".to_string(),
            });
        }
        out.push('\n');
    }
    out
}

/// The table of the broadcast runs.
fn broadcast_table(table: &Table, baseline: &str) -> String {
    let Table {
        scenarios,
        servers,
        cells,
    } = table;
    let base = servers.iter().position(|s| s == baseline);
    let mut out = String::from(
        "| scenario | server | runs | deliveries/s median [min–max] | publications/s \
         | server CPU µs/delivery median [min–max] | deliveries per server CPU-s \
         | latency p50 µs | latency p99 µs | lost | errors |",
    );
    if base.is_some() {
        out.push_str(&format!(" vs {baseline} |"));
    }
    out.push_str("\n|---|---|---|---|---|---|---|---|---|---|---|");
    if base.is_some() {
        out.push_str("---|");
    }
    out.push('\n');
    let us = |x: f64| format!("{x:.0}");
    for (si, scenario) in scenarios.iter().enumerate() {
        for (vi, server) in servers.iter().enumerate() {
            let Some(cell) = cells.get(&(si, vi)) else {
                continue;
            };
            out.push_str(&format!(
                "| {scenario} | {server} | {} | {} | {} | {} | {} | {} | {} | {} | {} |",
                cell.runs,
                fmt_spread(Spread::of(&cell.rate), fmt_rate),
                fmt_spread(Spread::of(&cell.publishes), fmt_rate),
                fmt_spread(Spread::of(&cell.cpu), |x| format!("{x:.2}")),
                fmt_spread(Spread::of(&cell.per_cpu), fmt_rate),
                fmt_spread(Spread::of(&cell.p50), us),
                fmt_spread(Spread::of(&cell.p99), us),
                cell.lost,
                cell.errors
            ));
            if let Some(b) = base {
                out.push_str(&format!(
                    " {} |",
                    broadcast_ratios(cell, cells.get(&(si, b)))
                ));
            }
            out.push('\n');
        }
    }
    out.push_str(
        "\nbroadcast: deliveries are messages received by subscribers (publishers' own copies are \
         not counted); server CPU is the server's whole CPU time over the window divided by the \
         deliveries; latency is from the publisher's write to a subscriber's read, the fan-out \
         to every subscriber included; lost: sequence gaps plus what had not arrived after the \
         drain, summed over the runs.\n",
    );
    out
}

/// The ratios of a broadcast cell's medians to the baseline's: deliveries, CPU per delivery,
/// latency.
fn broadcast_ratios(cell: &Cell, base: Option<&Cell>) -> String {
    let Some(base) = base else {
        return "—".to_string();
    };
    let parts: Vec<String> = [
        ("deliveries/s", &cell.rate, &base.rate),
        ("CPU", &cell.cpu, &base.cpu),
        ("p50", &cell.p50, &base.p50),
        ("p99", &cell.p99, &base.p99),
    ]
    .into_iter()
    .filter_map(|(name, a, b)| Some(format!("{name} ×{:.2}", ratio(a, b)?)))
    .collect();
    if parts.is_empty() {
        "—".to_string()
    } else {
        parts.join(", ")
    }
}

/// The ratio of the medians of `a` and `b`.
fn ratio(a: &[f64], b: &[f64]) -> Option<f64> {
    let (a, b) = (Spread::of(a)?, Spread::of(b)?);
    (b.median != 0.0).then(|| a.median / b.median)
}

fn index_of(list: &mut Vec<String>, s: String) -> usize {
    match list.iter().position(|x| *x == s) {
        Some(i) => i,
        None => {
            list.push(s);
            list.len() - 1
        }
    }
}

/// The ratios of a cell's medians to the baseline's: throughput, CPU, memory.
fn ratios(cell: &Cell, base: Option<&Cell>) -> String {
    let Some(base) = base else {
        return "—".to_string();
    };
    let mut parts = Vec::new();
    if let Some(r) = ratio(&cell.rate, &base.rate) {
        parts.push(format!("msg/s ×{r:.2}"));
    }
    if let Some(r) = ratio(&cell.cpu, &base.cpu) {
        parts.push(format!("CPU ×{r:.2}"));
    }
    if let Some(r) = ratio(&cell.rss, &base.rss) {
        parts.push(format!("B/conn ×{r:.2}"));
    }
    if let Some(r) = ratio(&cell.slope, &base.slope) {
        parts.push(format!("slope ×{r:.2}"));
    }
    if parts.is_empty() {
        "—".to_string()
    } else {
        parts.join(", ")
    }
}

fn fmt_spread(s: Option<Spread>, f: impl Fn(f64) -> String) -> String {
    s.map_or_else(
        || "—".to_string(),
        |s| format!("{} [{}–{}]", f(s.median), f(s.min), f(s.max)),
    )
}

/// 168.2k, 1.05M, 950.
fn fmt_rate(x: f64) -> String {
    if x >= 1e6 {
        format!("{:.2}M", x / 1e6)
    } else if x >= 1e3 {
        format!("{:.1}k", x / 1e3)
    } else {
        format!("{x:.0}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(scenario: &str, server: &str, rate: f64, cpu: f64) -> String {
        format!(
            r#"{{"mode":"pingpong","scenario":"{scenario}","label":"{server}","msgs_per_sec":{rate},"server_cpu_us_per_msg":{cpu},"errors":{{"total":0}}}}"#
        )
    }

    #[test]
    fn medians_and_ratios() {
        let mut input = String::new();
        for (r, c) in [(100e3, 5.0), (120e3, 4.0), (110e3, 6.0)] {
            input += &line("s1", "ringws", r, c);
            input += "\n";
            input += &line("s1", "other", r / 2.0, c * 2.0);
            input += "\n";
        }
        input += r#"{"mode":"idle","scenario":"idle","label":"ringws","rss_per_conn_bytes":300.0,"errors":{"total":2}}"#;
        input += "\nnot json\n";
        let md = markdown(&input, "ringws", &[]);
        let rows: Vec<&str> = md.lines().collect();
        assert_eq!(rows.len(), 5, "{md}");
        assert!(rows[0].ends_with("| vs ringws |"));
        assert_eq!(
            rows[2],
            "| s1 | ringws | 3 | 110.0k [100.0k–120.0k] | 5.00 [4.00–6.00] | — | 0 | msg/s ×1.00, CPU ×1.00 |"
        );
        assert_eq!(
            rows[3],
            "| s1 | other | 3 | 55.0k [50.0k–60.0k] | 10.00 [8.00–12.00] | — | 0 | msg/s ×0.50, CPU ×2.00 |"
        );
        assert_eq!(
            rows[4],
            "| idle | ringws | 1 | — | — | 300 [300–300] | 2 | B/conn ×1.00 |"
        );
    }

    #[test]
    fn versus_table_divides_the_baselines_cpu_by_each_named_server() {
        let mut input = String::new();
        // Two reps: the machine is slower in the second (every server's CPU doubles).
        for slow in [1.0, 2.0] {
            for (server, cpu) in [("ringws", 5.0), ("floor", 4.0), ("uws-cpp", 6.25)] {
                let cpu = if server == "floor" && slow > 1.0 {
                    3.0
                } else {
                    cpu
                };
                input += &line("s1", server, 1e5, cpu * slow);
                input += "\n";
            }
        }
        input += &line("s2", "ringws", 1e5, 1.0);
        let versus = [
            "floor".to_string(),
            "uws-cpp".to_string(),
            "absent".to_string(),
        ];
        let md = markdown(&input, "ringws", &versus);
        let tail: Vec<&str> = md.lines().skip_while(|l| !l.contains("÷ each")).collect();
        assert_eq!(
            tail,
            [
                "ringws's server CPU per message ÷ each server's, run by run (the k-th run of \
                 each, one after the other): median [min–max]",
                "",
                "| scenario | ÷ floor | ÷ uws-cpp |",
                "|---|---|---|",
                "| s1 | ×1.46 [1.25–1.67] | ×0.80 |",
                "| s2 | — | — |",
            ],
            "{md}"
        );
        assert!(!markdown(&input, "ringws", &["absent".to_string()]).contains("÷ each"));
    }

    #[test]
    fn an_idle_run_shows_its_setup_rate_and_cpu_per_connection() {
        let line = r#"{"mode":"idle","scenario":"hs","label":"ringws","setup_conns_per_sec":2000.0,"setup_server_cpu_us_per_conn":250.0,"rss_per_conn_bytes":900.0,"errors":{"total":0}}"#;
        let md = markdown(line, "ringws", &[]);
        assert!(
            md.contains("| hs | ringws | 1 | 2.0k [2.0k–2.0k] | 250.00 [250.00–250.00] |"),
            "{md}"
        );
        assert!(md.contains("connections set up per second"), "{md}");
        let slope = r#"{"mode":"idle","scenario":"slope","label":"ringws","rss_per_conn_bytes":900.0,"errors":{"total":0}}"#;
        assert!(!markdown(slope, "ringws", &[]).contains("connections set up per second"));
    }

    #[test]
    fn idle_slope_in_the_idle_cell() {
        let idle = |server: &str, abs: f64, slope: Option<f64>| {
            let slope = slope.map_or_else(|| "null".to_string(), |s| s.to_string());
            format!(
                r#"{{"mode":"idle","scenario":"slope","label":"{server}","rss_per_conn_bytes":{abs},"rss_slope_per_conn":{slope},"errors":{{"total":0}}}}"#
            )
        };
        let input = [
            idle("ringws", 400.0, Some(150.0)),
            idle("ringws", 420.0, Some(160.0)),
            idle("ringws", 410.0, Some(140.0)),
            idle("other", 800.0, Some(300.0)),
            idle("old", 900.0, None),
        ]
        .join("\n");
        let md = markdown(&input, "ringws", &[]);
        let rows: Vec<&str> = md.lines().collect();
        assert_eq!(
            rows[2],
            "| slope | ringws | 3 | — | — | 410 [400–420], slope 150 [140–160] | 0 | B/conn ×1.00, slope ×1.00 |",
            "{md}"
        );
        assert_eq!(
            rows[3],
            "| slope | other | 1 | — | — | 800 [800–800], slope 300 [300–300] | 0 | B/conn ×1.95, slope ×2.00 |"
        );
        // A run without the slope (an older tool, or no --sample-at): the absolute figure only.
        assert_eq!(
            rows[4],
            "| slope | old | 1 | — | — | 900 [900–900] | 0 | B/conn ×2.20 |"
        );
        assert!(md.contains("\"slope\": its growth per connection"), "{md}");
        // No slope anywhere: no note.
        assert!(!markdown(&idle("a", 1.0, None), "ringws", &[]).contains("\"slope\""));
    }

    fn bline(scenario: &str, server: &str, rate: f64, cpu: f64, p99: f64, lost: u64) -> String {
        format!(
            r#"{{"mode":"broadcast","scenario":"{scenario}","label":"{server}","msgs_per_sec":{rate},"deliveries_per_sec":{rate},"publishes_per_sec":100.0,"server_cpu_us_per_msg":{cpu},"server_cpu_us_per_delivery":{cpu},"deliveries_per_cpu_sec":{},"latency_us":{{"p50":{},"p99":{p99}}},"lost":{lost},"errors":{{"total":0}}}}"#,
            1e6 / cpu,
            p99 / 2.0
        )
    }

    #[test]
    fn broadcast_table_of_its_own() {
        let input = [
            bline("1 room × 1,000", "ringws", 100e3, 2.0, 4000.0, 0),
            bline("1 room × 1,000", "ringws", 98e3, 3.0, 6000.0, 0),
            bline("1 room × 1,000", "uws", 100e3, 4.0, 10000.0, 7),
        ]
        .join("\n");
        let md = markdown(&input, "ringws", &[]);
        let rows: Vec<&str> = md.lines().collect();
        assert!(
            rows[0].starts_with("| scenario | server | runs | deliveries/s"),
            "{md}"
        );
        assert!(rows[0].ends_with("| errors | vs ringws |"), "{md}");
        assert_eq!(
            rows[2],
            "| 1 room × 1,000 | ringws | 2 | 99.0k [98.0k–100.0k] | 100 [100–100] | 2.50 [2.00–3.00] \
             | 416.7k [333.3k–500.0k] | 2500 [2000–3000] | 5000 [4000–6000] | 0 | 0 \
             | deliveries/s ×1.00, CPU ×1.00, p50 ×1.00, p99 ×1.00 |",
            "{md}"
        );
        assert_eq!(
            rows[3],
            "| 1 room × 1,000 | uws | 1 | 100.0k [100.0k–100.0k] | 100 [100–100] | 4.00 [4.00–4.00] \
             | 250.0k [250.0k–250.0k] | 5000 [5000–5000] | 10000 [10000–10000] | 7 | 0 \
             | deliveries/s ×1.01, CPU ×1.60, p50 ×2.00, p99 ×2.00 |"
        );
        assert!(rows[5].starts_with("broadcast: deliveries are"), "{md}");
        // Only broadcast runs: no empty message table. With others: both, that one first.
        assert!(!md.contains("idle B/conn"));
        let mixed = format!("{}\n{input}", line("s", "ringws", 1000.0, 1.0));
        let md = markdown(&mixed, "ringws", &[]);
        assert!(md.starts_with("| scenario | server | runs | msg/s"), "{md}");
        assert!(
            md.contains("\n\n| scenario | server | runs | deliveries/s"),
            "{md}"
        );
        assert!(md.contains("| s | ringws | 1 | 1.0k [1.0k–1.0k] | 1.00 [1.00–1.00] | — | 0 |"));
        assert!(!md.contains("| s | ringws | 1 | 1.0k [1.0k–1.0k] | 100"));
    }

    #[test]
    fn broadcast_runs_get_their_paired_ratios_per_delivery() {
        // Two reps; the second on a slower machine (both servers' CPU grows).
        let input = [
            bline("1 room × 1,000", "ringws", 100e3, 2.0, 4000.0, 0),
            bline("1 room × 1,000", "ringws-base", 100e3, 2.5, 4000.0, 0),
            bline("1 room × 1,000", "ringws", 100e3, 4.0, 4000.0, 0),
            bline("1 room × 1,000", "ringws-base", 100e3, 4.0, 4000.0, 0),
        ]
        .join("\n");
        let md = markdown(&input, "ringws", &["ringws-base".to_string()]);
        let tail: Vec<&str> = md.lines().skip_while(|l| !l.contains("÷ each")).collect();
        assert_eq!(
            tail,
            [
                "ringws's server CPU per delivery ÷ each server's, run by run (the k-th run of \
                 each, one after the other): median [min–max]",
                "",
                "| scenario | ÷ ringws-base |",
                "|---|---|",
                "| 1 room × 1,000 | ×0.90 [0.80–1.00] |",
            ],
            "{md}"
        );
    }

    #[test]
    fn no_baseline_no_ratio_column() {
        let md = markdown(&line("s", "a", 1500.0, 1.0), "ringws", &[]);
        assert!(!md.contains("vs ringws"));
        assert!(md.contains("| s | a | 1 | 1.5k [1.5k–1.5k] | 1.00 [1.00–1.00] | — | 0 |"));
        assert_eq!(fmt_rate(2_500_000.0), "2.50M");
        assert_eq!(fmt_rate(950.0), "950");
    }
}

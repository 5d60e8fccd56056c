//! `--print-example-config`: every option as a commented TOML file for `--config`, each with
//! its help and its default (`tuning/ringws.toml` is this output, and a test keeps it so).

use clap::CommandFactory;

use super::Cli;

/// Options whose default depends on the machine: shown as a placeholder.
const MACHINE_DEFAULTS: [(&str, &str); 1] = [("workers", "<number of CPUs>")];

/// Wraps `text` at ~92 columns into `# ` lines.
fn comment(text: &str, out: &mut String) {
    let mut line = String::new();
    for word in text.split_whitespace() {
        if !line.is_empty() && line.len() + word.len() > 92 {
            out.push_str(&format!("# {line}\n"));
            line.clear();
        }
        if !line.is_empty() {
            line.push(' ');
        }
        line.push_str(word);
    }
    if !line.is_empty() {
        out.push_str(&format!("# {line}\n"));
    }
}

/// The example file.
pub(crate) fn example_config() -> String {
    let defaults: toml::Table = Cli::command()
        .no_binary_name(true)
        .try_get_matches_from(Vec::<String>::new())
        .ok()
        .and_then(|m| <Cli as clap::FromArgMatches>::from_arg_matches(&m).ok())
        .and_then(|cli| cli.print_config(&[]).ok())
        .and_then(|text| text.parse().ok())
        .unwrap_or_default();
    let mut out = String::from(
        "# ringws: an example configuration file (`ringws --config FILE`). Every option is here,\n\
         # commented out at its default: uncomment what you change. The keys are the long flag\n\
         # names (`ringws --help`); flags given on the command line win over the file.\n\
         # `ringws --print-config` shows the configuration in effect.\n",
    );
    for arg in Cli::command().get_arguments() {
        let Some(key) = arg.get_long() else { continue };
        if super::print::NOT_PRINTED.contains(&key) {
            continue;
        }
        out.push('\n');
        comment(
            &arg.get_help().map(|h| h.to_string()).unwrap_or_default(),
            &mut out,
        );
        let placeholder = || {
            let name = arg
                .get_value_names()
                .and_then(|v| v.first().map(|n| n.to_string()))
                .unwrap_or_else(|| key.to_uppercase().replace('-', "_"));
            let many = arg.get_num_args().is_some_and(|n| n.max_values() > 1)
                || matches!(arg.get_action(), clap::ArgAction::Append);
            if many {
                format!("[\"<{name}>\"]")
            } else {
                format!("\"<{name}>\"")
            }
        };
        let value = match MACHINE_DEFAULTS.iter().find(|(k, _)| *k == key) {
            Some((_, shown)) => shown.to_string(),
            None => defaults
                .get(key)
                .map_or_else(placeholder, |v| v.to_string()),
        };
        out.push_str(&format!("# {key} = {value}\n"));
    }
    out.push_str(
        "\n# Room rules by name prefix (no flag): one [[namespace]] table each; the longest\n\
         # prefix that matches a room's name applies (README, \"Identity, room rules and rate\n\
         # limits\").\n\
         # [[namespace]]\n\
         # prefix = \"news:\"\n\
         # join = \"anyone\"       # anyone | token | claim | signed\n\
         # send = \"nobody\"       # members | nobody\n\
         # max-text = 1000\n\
         # join-leave = false\n\
         # history = true\n\
         # presence = true\n",
    );
    out
}

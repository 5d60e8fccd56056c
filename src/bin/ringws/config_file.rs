//! `--config FILE`: a TOML file of options, merged in front of the command line.

use clap::CommandFactory;

use crate::cli::Cli;

/// The command line with the options of `--config FILE` put in front of it (so the command
/// line wins: later occurrences override earlier ones), each checked by the same parser as the
/// flag it names.
pub(crate) fn args_with_config_file() -> Result<Vec<std::ffi::OsString>, String> {
    let argv: Vec<std::ffi::OsString> = std::env::args_os().collect();
    let mut path = None;
    for (i, arg) in argv.iter().enumerate() {
        let arg = arg.to_string_lossy();
        if arg == "--config" {
            path = argv.get(i + 1).map(|p| p.to_string_lossy().into_owned());
        } else if let Some(p) = arg.strip_prefix("--config=") {
            path = Some(p.to_owned());
        }
    }
    let Some(path) = path else {
        return Ok(argv);
    };
    let text =
        std::fs::read_to_string(&path).map_err(|e| format!("--config: cannot read {path}: {e}"))?;
    let table: toml::Table = text
        .parse()
        .map_err(|e| format!("--config: {path} is not valid TOML: {e}"))?;
    let command = Cli::command();
    let mut args = vec![argv[0].clone()];
    for (key, value) in table {
        let known = command
            .get_arguments()
            .any(|a| a.get_long() == Some(key.as_str()) && key != "config");
        if !known {
            return Err(format!(
                "--config: {path}: unknown option '{key}' (keys are the long flag names, see --help)"
            ));
        }
        let flag = format!("--{key}");
        let values = match value {
            toml::Value::Array(items) => items,
            one => vec![one],
        };
        for value in values {
            match value {
                toml::Value::Boolean(true) => args.push(flag.clone().into()),
                toml::Value::Boolean(false) => {}
                toml::Value::String(s) => args.extend([flag.clone().into(), s.into()]),
                toml::Value::Integer(n) => args.extend([flag.clone().into(), n.to_string().into()]),
                other => {
                    return Err(format!(
                        "--config: {path}: '{key}' must be a string, a number or a boolean, not {}",
                        other.type_str()
                    ));
                }
            }
        }
    }
    args.extend(argv.into_iter().skip(1));
    Ok(args)
}

//! The listen address from the command line: `--listen ADDR`, a bare `ADDR`, or a bare port
//! (on 127.0.0.1). Default 127.0.0.1:65001.

use std::net::SocketAddr;

/// Parses the arguments or exits with a usage line.
pub fn addr_from_args() -> SocketAddr {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let arg = match args.as_slice() {
        [] => "65001",
        [flag, a] if flag == "--listen" => a.as_str(),
        [a] => a.strip_prefix("--listen=").unwrap_or(a),
        _ => usage(),
    };
    if let Ok(port) = arg.parse::<u16>() {
        return SocketAddr::from(([127, 0, 0, 1], port));
    }
    arg.parse().unwrap_or_else(|_| usage())
}

fn usage() -> ! {
    let name = std::env::args().next().unwrap_or_default();
    eprintln!("usage: {name} [--listen] ADDR|PORT");
    std::process::exit(2)
}

//! Echo server on tokio-tungstenite, the shape of the crate's own `echo-server` example: tokio
//! current-thread runtime, TCP_NODELAY, default configuration (pongs are sent by tungstenite).
//!
//! Usage: `tungstenite-echo --listen 127.0.0.1:65002` (or just the address, or a port).

use futures_util::{SinkExt, StreamExt};
use tokio::net::{TcpListener, TcpStream};

#[path = "../listen.rs"]
mod listen;

async fn handle(stream: TcpStream) -> Result<(), tokio_tungstenite::tungstenite::Error> {
    let mut ws = tokio_tungstenite::accept_async(stream).await?;
    while let Some(msg) = ws.next().await {
        let msg = msg?;
        if msg.is_text() || msg.is_binary() {
            ws.send(msg).await?;
        }
    }
    Ok(())
}

fn main() -> std::io::Result<()> {
    let addr = listen::addr_from_args();
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    rt.block_on(async move {
        let listener = TcpListener::bind(addr).await?;
        eprintln!("tungstenite-echo listening on {addr}");
        loop {
            let (stream, _) = listener.accept().await?;
            stream.set_nodelay(true)?;
            tokio::spawn(async move {
                if let Err(e) = handle(stream).await {
                    eprintln!("connection error: {e}");
                }
            });
        }
    })
}

//! Two clients chat through the `chat` hub of an in-process fixture (or of the hub URL given
//! as the first argument, e.g. `cargo run -p talkback-examples --example chat -- http://127.0.0.1:5000/hubs/chat`).

use std::time::Duration;
use talkback::{HubConnectionBuilder, Protocol};
use tokio::sync::mpsc;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let (url, server) = match std::env::args().nth(1) {
        Some(url) => (url, None),
        None => {
            let server = talkback_fixture::spawn(talkback_fixture::Config::default()).await?;
            (server.hub_url("chat"), Some(server))
        }
    };

    let ann = HubConnectionBuilder::new(url.clone())
        .with_automatic_reconnect()
        .build()?;
    let bob = HubConnectionBuilder::new(url)
        .with_protocol(Protocol::MessagePack)
        .build()?;

    let (tx, mut rx) = mpsc::unbounded_channel();
    bob.on("ReceiveMessage", move |(user, text): (String, String)| {
        let _ = tx.send(format!("{user}: {text}"));
    });
    ann.start().await?;
    bob.start().await?;

    for text in ["hello", "anyone here?"] {
        ann.invoke::<()>("Send", ("ann", text)).await?;
    }
    for _ in 0..2 {
        let line = tokio::time::timeout(Duration::from_secs(5), rx.recv()).await?;
        println!("bob got  {}", line.unwrap_or_default());
    }

    ann.stop().await?;
    bob.stop().await?;
    if let Some(server) = server {
        server.shutdown().await;
    }
    Ok(())
}

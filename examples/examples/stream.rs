//! Streams both ways against the `test` hub of an in-process fixture: a server-to-client
//! `Counter` read as a `futures::Stream`, and an upload summed by the server.

use futures::StreamExt;
use talkback::HubConnectionBuilder;

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let server = talkback_fixture::spawn(talkback_fixture::Config::default()).await?;
    let conn = HubConnectionBuilder::new(server.hub_url("test")).build()?;
    conn.start().await?;

    let mut counter = conn.stream::<u64>("Counter", (5, 10)).await?;
    while let Some(item) = counter.next().await {
        println!("item {}", item?);
    }

    let numbers = futures::stream::iter([1, 2, 3, 4]);
    let sum: i64 = conn.invoke_with_upload("UploadSum", (), numbers).await?;
    println!("the server summed the upload: {sum}");

    conn.stop().await?;
    server.shutdown().await;
    Ok(())
}

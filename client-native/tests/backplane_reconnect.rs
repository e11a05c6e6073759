//! The native client's automatic reconnect across fixture nodes joined by the Redis backplane
//! (docs/backplane.md): a real `redis-server` on a free loopback port, three in-process nodes,
//! and a client that reaches node A through a TCP proxy. Node A dies (the proxy cuts every
//! socket at once, as a dead host would, then the node stops); the proxy now leads to node B,
//! the client's automatic reconnect lands there with a new connection id, and sends from node C
//! reach it again through Redis. With stateful reconnect the client first tries to re-attach to
//! its old connection, which node B does not know: it falls back to a new connection, as the
//! protocol requires.
//!
//! Skipped (with a message) only when `redis-server` is not installed (scripts/redis-setup.sh).

mod common;

use common::within;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::Arc;
use std::time::Duration;
use talkback::{HubConnection, HubConnectionBuilder, Protocol, State, TransportKind, TransportSet};
use talkback_fixture::{Config, RedisConfig, Server};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, watch};

// The fixture's test launcher for a real redis-server (one file for both crates' tests).
#[path = "../../server-fixture/tests/kit/redis.rs"]
mod redis;
use redis::Redis;

/// A fixture node on the backplane (stateful reconnect allowed).
async fn node(redis: &Redis) -> Server {
    let config = Config {
        redis: Some(RedisConfig::new(redis.url()).with_prefix("native-")),
        allow_stateful_reconnect: true,
        ..Config::default()
    };
    talkback_fixture::spawn(config)
        .await
        .expect("the node joins the backplane")
}

/// A TCP proxy on a loopback port: each new socket goes to the current target port; `cut`
/// drops every socket it carries at once (no close handshake reaches either side first).
struct Proxy {
    port: u16,
    target: Arc<AtomicU16>,
    cut: watch::Sender<u64>,
    accept: tokio::task::JoinHandle<()>,
}

impl Proxy {
    async fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let target = Arc::new(AtomicU16::new(target));
        let (cut, _) = watch::channel(0u64);
        let accept = {
            let target = target.clone();
            let cut = cut.clone();
            tokio::spawn(async move {
                while let Ok((mut client, _)) = listener.accept().await {
                    let port = target.load(Ordering::SeqCst);
                    let mut cut = cut.subscribe();
                    tokio::spawn(async move {
                        let Ok(mut upstream) = TcpStream::connect(("127.0.0.1", port)).await else {
                            return;
                        };
                        tokio::select! {
                            _ = tokio::io::copy_bidirectional(&mut client, &mut upstream) => {}
                            // Both sockets are dropped: no WebSocket close frame, no
                            // HTTP response, as from a host that vanished.
                            _ = cut.changed() => {}
                        }
                    });
                }
            })
        };
        Proxy {
            port,
            target,
            cut,
            accept,
        }
    }

    fn hub_url(&self) -> String {
        format!("http://127.0.0.1:{}/hubs/test", self.port)
    }

    /// New sockets go to `port` from now on.
    fn switch_to(&self, port: u16) {
        self.target.store(port, Ordering::SeqCst);
    }

    /// Drops every socket carried so far.
    fn cut(&self) {
        self.cut.send_modify(|n| *n += 1);
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.accept.abort();
        self.cut();
    }
}

/// A client of the test hub at `url`; its `Broadcast` calls go to the returned channel.
fn client(
    url: String,
    transport: TransportKind,
    protocol: Protocol,
    stateful: bool,
) -> (HubConnection, mpsc::UnboundedReceiver<String>) {
    let mut builder = HubConnectionBuilder::new(url)
        .with_transports(TransportSet::only(transport))
        .with_protocol(protocol)
        .with_http_timeout(Duration::from_secs(5))
        .with_automatic_reconnect_delays(
            [0, 100, 250, 500, 1000, 1000, 2000, 2000]
                .map(Duration::from_millis)
                .to_vec(),
        );
    if stateful {
        builder = builder.with_stateful_reconnect();
    }
    let conn = builder.build().expect("the client builds");
    let (tx, rx) = mpsc::unbounded_channel();
    conn.on("Broadcast", move |(text,): (String,)| {
        let _ = tx.send(text);
    });
    (conn, rx)
}

/// Receives `Broadcast` calls until `text` arrives.
async fn until(got: &mut mpsc::UnboundedReceiver<String>, text: &str) {
    within(async {
        while let Some(t) = got.recv().await {
            if t == text {
                return;
            }
        }
        panic!("the client's handler was dropped");
    })
    .await;
}

/// Connects a client to node A through a proxy, kills node A under it, and checks that it
/// lands on node B with a new connection id and is reached from node C again.
async fn node_dies_under(
    redis: &Redis,
    b: &Server,
    c: &Server,
    transport: TransportKind,
    protocol: Protocol,
    stateful: bool,
) {
    let l = format!(
        "{} + {}{}",
        transport.name(),
        protocol.name(),
        if stateful { " (stateful)" } else { "" }
    );
    let a = node(redis).await;
    let proxy = Proxy::start(a.addr().port()).await;
    let (moving, mut got) = client(proxy.hub_url(), transport, protocol, stateful);
    let (events_tx, mut events) = mpsc::unbounded_channel::<String>();
    let tx = events_tx.clone();
    moving.on_reconnecting(move |_| {
        let _ = tx.send("reconnecting".into());
    });
    moving.on_reconnected(move |id| {
        let _ = events_tx.send(format!("reconnected {}", id.unwrap_or_default()));
    });
    within(moving.start())
        .await
        .expect("starts through the proxy");
    let first_id = moving.connection_id().unwrap();
    assert!(
        a.connection_info(&first_id).is_some(),
        "{l}: starts on node A"
    );

    let (sender, _) = client(
        c.hub_url("test"),
        TransportKind::WebSockets,
        Protocol::Json,
        false,
    );
    within(sender.start()).await.unwrap();
    within(sender.invoke::<()>("Broadcast", (format!("before {l}"),)))
        .await
        .unwrap();
    until(&mut got, &format!("before {l}")).await;

    // Node A dies: every socket to it breaks at once, then it is gone for good.
    proxy.switch_to(b.addr().port());
    proxy.cut();
    a.shutdown().await;

    assert_eq!(
        within(events.recv()).await.as_deref(),
        Some("reconnecting"),
        "{l}"
    );
    let reconnected = within(events.recv()).await.unwrap();
    let new_id = reconnected
        .strip_prefix("reconnected ")
        .unwrap_or_else(|| panic!("{l}: {reconnected}"))
        .to_owned();
    assert_ne!(new_id, first_id, "{l}: a new connection");
    assert_eq!(
        moving.connection_id().as_deref(),
        Some(new_id.as_str()),
        "{l}"
    );
    assert_eq!(moving.state(), State::Connected, "{l}");
    assert!(b.connection_info(&new_id).is_some(), "{l}: lives on node B");
    assert!(
        b.connection_info(&first_id).is_none(),
        "{l}: B never knew the old one"
    );

    // Node C's broadcast reaches it on node B through Redis, and its own reaches node C.
    let text = format!("after {l}");
    within(sender.invoke::<()>("Broadcast", (text.clone(),)))
        .await
        .unwrap();
    until(&mut got, &text).await;
    let (watcher, mut seen) = client(
        c.hub_url("test"),
        TransportKind::WebSockets,
        Protocol::Json,
        false,
    );
    within(watcher.start()).await.unwrap();
    let back = format!("from the moved client {l}");
    within(moving.invoke::<()>("Broadcast", (back.clone(),)))
        .await
        .unwrap();
    until(&mut seen, &back).await;
    for conn in [watcher, sender, moving] {
        within(conn.stop()).await.unwrap();
    }
    drop(proxy);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_whose_node_dies_reconnects_through_the_proxy_to_another_node_and_is_reached_there(
) {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (b, c) = (node(&redis).await, node(&redis).await);
    for (transport, protocol) in [
        (TransportKind::WebSockets, Protocol::Json),
        (TransportKind::ServerSentEvents, Protocol::Json),
        (TransportKind::LongPolling, Protocol::MessagePack),
    ] {
        node_dies_under(&redis, &b, &c, transport, protocol, false).await;
    }
    b.shutdown().await;
    c.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stateful_client_whose_node_dies_falls_back_to_a_new_connection_on_another_node() {
    let Some(redis) = Redis::start().await else {
        return;
    };
    let (b, c) = (node(&redis).await, node(&redis).await);
    for protocol in [Protocol::Json, Protocol::MessagePack] {
        node_dies_under(&redis, &b, &c, TransportKind::WebSockets, protocol, true).await;
    }
    b.shutdown().await;
    c.shutdown().await;
}

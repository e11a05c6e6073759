//! Shared helpers of the integration tests: the in-process fixture, the transport × protocol
//! combinations, builders with short timeouts.
#![allow(dead_code)]

pub(crate) mod azure;

use std::future::Future;
use std::time::Duration;
use talkback::{HubConnection, HubConnectionBuilder, Protocol, TransportKind, TransportSet};

/// Every transport × protocol pair that exists (MessagePack needs binary, so not over SSE).
pub(crate) const COMBOS: [(TransportKind, Protocol); 5] = [
    (TransportKind::WebSockets, Protocol::Json),
    (TransportKind::WebSockets, Protocol::MessagePack),
    (TransportKind::ServerSentEvents, Protocol::Json),
    (TransportKind::LongPolling, Protocol::Json),
    (TransportKind::LongPolling, Protocol::MessagePack),
];

/// A running in-process fixture.
pub(crate) struct Hub {
    pub(crate) server: talkback_fixture::Server,
}

impl Hub {
    /// Starts a fixture on a loopback port (stateful reconnect allowed).
    pub(crate) async fn start() -> Hub {
        let config = talkback_fixture::Config {
            allow_stateful_reconnect: true,
            ..Default::default()
        };
        Hub::start_with(config).await
    }

    /// Starts a fixture with `config`.
    pub(crate) async fn start_with(config: talkback_fixture::Config) -> Hub {
        let server = talkback_fixture::spawn(config)
            .await
            .expect("the fixture starts");
        Hub { server }
    }

    /// The URL of the `test` hub.
    pub(crate) fn url(&self) -> String {
        format!("{}/hubs/test", self.server.url())
    }

    /// Drops a connection's transport without a Close message.
    pub(crate) fn drop_transport(&self, connection_id: &str) {
        if let Some(faults) = self.server.connection_faults(connection_id) {
            faults.drop_transport();
        }
    }

    /// Stops sending pings to every connection.
    pub(crate) fn stop_pings(&self) {
        self.server.faults().stop_pings(true);
    }

    /// Refuses WebSocket upgrades.
    pub(crate) fn refuse_websockets(&self) {
        self.server
            .faults()
            .refuse_at_connect(TransportKind::WebSockets, true);
    }
}

/// A builder for the test hub with one transport, one protocol and short timeouts.
pub(crate) fn builder(
    hub: &Hub,
    transport: TransportKind,
    protocol: Protocol,
) -> HubConnectionBuilder {
    HubConnectionBuilder::new(hub.url())
        .with_transports(TransportSet::only(transport))
        .with_protocol(protocol)
        .with_http_timeout(Duration::from_secs(5))
}

/// Connects to the test hub with one transport and protocol.
pub(crate) async fn connect(
    hub: &Hub,
    transport: TransportKind,
    protocol: Protocol,
) -> HubConnection {
    let conn = builder(hub, transport, protocol).build().expect("builds");
    within(conn.start()).await.expect("starts");
    conn
}

/// Fails the test when `f` takes more than 10 seconds.
pub(crate) async fn within<F: Future>(f: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(10), f)
        .await
        .expect("finished within 10 s")
}

/// A label for assertion messages.
pub(crate) fn label(transport: TransportKind, protocol: Protocol) -> String {
    format!("{} + {}", transport.name(), protocol.name())
}

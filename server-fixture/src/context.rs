//! What hub code sees: [`HubContext`] (the caller, other clients, groups, client results),
//! [`StreamSender`] for streaming methods and [`UploadStream`] for client-to-server streams.

use crate::fanout::{Audience, Outgoing};
use crate::hub::HubError;
use crate::registry::{Command, Conn, RequestInfo, Shared};
use parking_lot::Mutex;
use serde::Serialize;
use std::sync::Arc;
use std::time::Duration;
use talkback_core::protocol::{
    encode_arguments, CompletionResult, HubMessage, Invocation, Protocol, RawValue, StreamItem,
};
use tokio::sync::{mpsc, oneshot};

/// The context of one hub call or connection callback.
#[derive(Clone)]
pub struct HubContext {
    pub(crate) conn: Arc<Conn>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) uploads: Arc<Mutex<Vec<Option<UploadStream>>>>,
}

impl std::fmt::Debug for HubContext {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubContext")
            .field("connection_id", &self.conn.id)
            .field("hub", &&*self.conn.hub)
            .finish_non_exhaustive()
    }
}

impl HubContext {
    /// The caller's connection id.
    pub fn connection_id(&self) -> &str {
        &self.conn.id
    }

    /// The caller's user id, from its access token (see [`crate::user_from_token`]).
    pub fn user_id(&self) -> Option<&str> {
        self.conn.user.as_deref()
    }

    /// The caller's hub protocol.
    pub fn protocol(&self) -> Protocol {
        self.conn.protocol()
    }

    /// The HTTP request that opened the caller's transport.
    pub fn request(&self) -> RequestInfo {
        self.conn.request.get().cloned().unwrap_or_default()
    }

    /// Sends `target(arguments...)` to `audience` within the caller's hub, through the fan-out.
    fn fan_out<A: Serialize + ?Sized>(
        &self,
        audience: Audience<'_>,
        target: &str,
        arguments: &A,
    ) -> Result<(), HubError> {
        let started = std::time::Instant::now();
        let message = Outgoing::new(target, arguments);
        let sent = self.shared.fan_out.send(&self.conn.hub, audience, &message);
        self.shared.metrics.fan_out(started.elapsed());
        sent
    }

    /// Sends `target(arguments...)` to the caller; `arguments` is a tuple or a sequence.
    pub fn send_to_caller<A: Serialize + ?Sized>(
        &self,
        target: &str,
        arguments: &A,
    ) -> Result<(), HubError> {
        self.fan_out(Audience::Connection(&self.conn.id), target, arguments)
    }

    /// Sends to every connection of this hub.
    pub fn send_to_all<A: Serialize + ?Sized>(
        &self,
        target: &str,
        arguments: &A,
    ) -> Result<(), HubError> {
        self.fan_out(Audience::All { excluded: &[] }, target, arguments)
    }

    /// Sends to every connection of this hub but the caller.
    pub fn send_to_others<A: Serialize + ?Sized>(
        &self,
        target: &str,
        arguments: &A,
    ) -> Result<(), HubError> {
        let excluded = [self.conn.id.as_str()];
        self.fan_out(
            Audience::All {
                excluded: &excluded,
            },
            target,
            arguments,
        )
    }

    /// Sends to one connection of this hub by id, on this node or (with a backplane) another.
    pub fn send_to_connection<A: Serialize + ?Sized>(
        &self,
        connection_id: &str,
        target: &str,
        arguments: &A,
    ) -> Result<(), HubError> {
        self.fan_out(Audience::Connection(connection_id), target, arguments)
    }

    /// Sends to every connection of `user` on this hub.
    pub fn send_to_user<A: Serialize + ?Sized>(
        &self,
        user: &str,
        target: &str,
        arguments: &A,
    ) -> Result<(), HubError> {
        self.fan_out(Audience::User(user), target, arguments)
    }

    /// Sends to the members of `group`.
    pub fn send_to_group<A: Serialize + ?Sized>(
        &self,
        group: &str,
        target: &str,
        arguments: &A,
    ) -> Result<(), HubError> {
        self.fan_out(
            Audience::Group {
                group,
                excluded: &[],
            },
            target,
            arguments,
        )
    }

    /// Adds the caller to `group`.
    pub fn join_group(&self, group: &str) {
        self.shared
            .fan_out
            .join(&self.conn.hub, group, &self.conn.id);
    }

    /// Removes the caller from `group`.
    pub fn leave_group(&self, group: &str) {
        self.shared
            .fan_out
            .leave(&self.conn.hub, group, &self.conn.id);
    }

    /// Invokes `target(arguments...)` on the caller and waits for its result (a client result).
    /// The client's error text comes back as `HubError::Hub`.
    pub async fn invoke_caller<A: Serialize + ?Sized>(
        &self,
        target: &str,
        arguments: &A,
        timeout: Duration,
    ) -> Result<Option<RawValue>, HubError> {
        let arguments = encode_arguments(self.protocol(), arguments)?;
        let id = self.conn.next_server_invocation_id();
        let (tx, rx) = oneshot::channel();
        self.conn.client_results.lock().insert(id.clone(), tx);
        let sent = self
            .conn
            .push(Command::Message(Box::new(HubMessage::Invocation(
                Invocation {
                    invocation_id: Some(id.clone()),
                    target: target.to_owned(),
                    arguments,
                    stream_ids: None,
                    headers: Default::default(),
                },
            ))));
        if !sent {
            self.conn.client_results.lock().remove(&id);
            return Err(HubError::Unexpected("the connection is gone".into()));
        }
        let outcome = tokio::time::timeout(timeout, rx).await;
        self.conn.client_results.lock().remove(&id);
        match outcome {
            Ok(Ok(CompletionResult::Value(value))) => Ok(Some(value)),
            Ok(Ok(CompletionResult::Void)) => Ok(None),
            Ok(Ok(CompletionResult::Error(text))) => Err(HubError::Hub(text)),
            Ok(Err(_)) => Err(HubError::Hub("Connection disconnected.".into())),
            Err(_) => Err(HubError::Hub("The client did not answer in time.".into())),
        }
    }

    /// Invokes `target(arguments...)` on the connection `connection_id` of this hub and waits
    /// for its result: on this node directly, on another node through the Redis backplane
    /// (`Clients.Client(id).InvokeAsync` across nodes). The client's error text comes back as
    /// `HubError::Hub`.
    pub async fn invoke_connection<A: Serialize + ?Sized>(
        &self,
        connection_id: &str,
        target: &str,
        arguments: &A,
        timeout: Duration,
    ) -> Result<Option<RawValue>, HubError> {
        let local = self
            .shared
            .by_id(connection_id)
            .filter(|c| c.hub.eq_ignore_ascii_case(&self.conn.hub));
        match (local, &self.shared.backplane) {
            (Some(conn), _) => {
                let callee = HubContext {
                    conn,
                    shared: self.shared.clone(),
                    uploads: Default::default(),
                };
                callee.invoke_caller(target, arguments, timeout).await
            }
            (None, Some(backplane)) => {
                let message = Outgoing::new(target, arguments);
                backplane
                    .invoke_remote(&self.conn.hub, connection_id, &message, timeout)
                    .await
            }
            (None, None) => Err(HubError::Hub(format!(
                "Connection '{connection_id}' does not exist."
            ))),
        }
    }

    /// Takes the `index`-th upload stream of this invocation (in `streamIds` order).
    pub fn take_upload(&self, index: usize) -> Option<UploadStream> {
        self.uploads.lock().get_mut(index)?.take()
    }

    /// Sends a Close message to the caller, then ends its transport.
    pub fn close_caller(&self, error: Option<String>, allow_reconnect: bool) {
        self.conn.push(Command::Close {
            error,
            allow_reconnect,
        });
    }

    /// Ends the caller's connection at once, without a Close message.
    pub fn abort_caller(&self) {
        self.conn.abort();
    }

    /// Drops the caller's transport without a Close message (a stateful connection may
    /// re-attach).
    pub fn drop_caller_transport(&self) {
        self.conn.drop_transport();
    }
}

/// Sends the items of a server-to-client stream, in the caller's protocol.
pub struct StreamSender {
    pub(crate) conn: Arc<Conn>,
    pub(crate) invocation_id: String,
}

impl std::fmt::Debug for StreamSender {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StreamSender")
            .field("connection_id", &self.conn.id)
            .field("invocation_id", &self.invocation_id)
            .finish()
    }
}

impl StreamSender {
    /// Sends one item, waiting while the connection's outbound queue is full (a stream
    /// slows down to its client's pace); fails when the connection is gone.
    pub async fn send<T: Serialize + ?Sized>(&self, item: &T) -> Result<(), HubError> {
        let item = RawValue::encode(self.conn.protocol(), item)?;
        self.send_raw(item).await
    }

    /// Sends one item already encoded in the caller's protocol.
    pub async fn send_raw(&self, item: RawValue) -> Result<(), HubError> {
        let message = Command::Message(Box::new(HubMessage::StreamItem(StreamItem {
            invocation_id: self.invocation_id.clone(),
            item,
            headers: Default::default(),
        })));
        // A stream waits for room while half the queue is taken: the other half stays free
        // for sends that do not wait (a group message, `Welcome`), which would otherwise find
        // the queue full and abort a client that reads perfectly well.
        let limit = self.conn.commands.max_capacity() / 2;
        self.conn
            .commands
            .send_within(message, limit)
            .await
            .map_err(|_| HubError::Unexpected("the connection is gone".into()))
    }
}

/// One client-to-server stream: items as they arrive, then the end (an `Err` when the client
/// completed it with an error).
#[derive(Debug)]
pub struct UploadStream {
    pub(crate) items: mpsc::Receiver<Result<RawValue, String>>,
}

impl UploadStream {
    /// The next item; `None` at the end.
    pub async fn next(&mut self) -> Option<Result<RawValue, HubError>> {
        self.items.recv().await.map(|r| r.map_err(HubError::Hub))
    }
}

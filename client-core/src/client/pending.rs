//! Who waits for what: the replies the driver owes callers, and what the application must
//! receive before the driver reads more input (dispatches and stream items, with backpressure).

use super::commands::{Command, ItemSender, Reply, Shared};
use super::driver::bounded;
use super::error::Error;
use super::handlers::{run_dispatcher, ClientResultDone, Dispatch, Registry, DISPATCH_QUEUE};
use super::runtime::Runtime;
use crate::connection::{invocation_number, FastMap, GiveBackRoom};
use crate::protocol::RawValue;
use crate::{Connection, Event, Instant, State};
use futures_channel::{mpsc, oneshot};
use std::collections::VecDeque;
use std::sync::Arc;
use std::task::{Context, Poll};

/// The error of a call whose id the engine made in a form it does not read back (never
/// happens: its ids are decimal numbers).
fn unknown_id(id: &str) -> Error {
    Error::Runtime(format!(
        "the engine made an invocation id it cannot read back: {id}"
    ))
}

/// The error of calls and streams the closing connection ends.
fn closed_error() -> Error {
    Error::Connection(crate::Error::Closed(
        crate::connection::INVOCATION_CANCELED.into(),
    ))
}

/// Something the application must receive, in order, before the driver reads more input.
enum Delivery {
    Dispatch(Dispatch),
    /// An item (or the final error) for the stream with this key.
    Item(u64, Result<RawValue, Error>),
    /// The stream with this key has ended: let go of its sender once its items are delivered.
    End(u64),
}

/// The queues to the application: the dispatcher's, and one per stream.
///
/// A delivery goes straight into its queue when nothing waits before it; otherwise, or when the
/// queue is full, it waits here in order, and the driver stops reading the transport until
/// [`Deliveries::poll_flush`] has delivered everything. Each stream's items always go through
/// the same sender (never a clone, whose slot of its own would let one more item past a full
/// queue every time).
pub(crate) struct Deliveries {
    waiting: VecDeque<Delivery>,
    dispatcher: Dispatcher,
    streams: FastMap<u64, ItemSender>,
}

/// The handler dispatcher's queue; the task, its queue and the queue of client-result answers
/// start with the first dispatch (an idle connection that is never called by the server keeps
/// none of them).
enum Dispatcher {
    NotStarted {
        registry: Arc<Registry>,
        runtime: Arc<dyn Runtime>,
    },
    Started {
        queue: mpsc::Sender<Dispatch>,
        /// The answers of client-result handlers, until the driver takes this end.
        results: Option<mpsc::UnboundedReceiver<ClientResultDone>>,
    },
}

impl Dispatcher {
    fn queue(&mut self) -> &mut mpsc::Sender<Dispatch> {
        if let Dispatcher::NotStarted { registry, runtime } = self {
            let (tx, rx) = bounded(DISPATCH_QUEUE);
            let (results_tx, results_rx) = mpsc::unbounded();
            runtime.spawn(Box::pin(run_dispatcher(
                rx,
                registry.clone(),
                results_tx,
                runtime.clone(),
            )));
            *self = Dispatcher::Started {
                queue: tx,
                results: Some(results_rx),
            };
        }
        match self {
            Dispatcher::Started { queue, .. } => queue,
            Dispatcher::NotStarted { .. } => unreachable!("the dispatcher was just started"),
        }
    }
}

impl Deliveries {
    /// Deliveries to a dispatcher of `registry`'s handlers on `runtime` (started at the first
    /// dispatch).
    pub(crate) fn new(registry: Arc<Registry>, runtime: Arc<dyn Runtime>) -> Self {
        Deliveries {
            waiting: VecDeque::new(),
            dispatcher: Dispatcher::NotStarted { registry, runtime },
            streams: FastMap::default(),
        }
    }

    /// The receiving end of the client-result answers, once the dispatcher has started (given
    /// out once).
    pub(crate) fn take_results(&mut self) -> Option<mpsc::UnboundedReceiver<ClientResultDone>> {
        match &mut self.dispatcher {
            Dispatcher::Started { results, .. } => results.take(),
            Dispatcher::NotStarted { .. } => None,
        }
    }

    /// Gives back the room of the empty queue of waiting deliveries and the stream map.
    pub(crate) fn trim(&mut self) {
        self.waiting.give_back_if_empty();
        self.streams.give_back_if_empty();
    }

    /// Whether everything has been delivered (the driver reads input only then).
    pub(crate) fn is_empty(&self) -> bool {
        self.waiting.is_empty()
    }

    fn dispatch(&mut self, dispatch: Dispatch) {
        if let (
            Dispatcher::NotStarted { registry, .. },
            Dispatch::Invocation {
                target,
                invocation_id: None,
                ..
            },
        ) = (&self.dispatcher, &dispatch)
        {
            // Nothing would run (a greeting the application does not listen to): no need to
            // start the dispatcher for it.
            if self.waiting.is_empty() && registry.is_unhandled(target) {
                tracing::warn!("No client method with the name '{target}' found.");
                return;
            }
        }
        if self.waiting.is_empty() {
            match self.dispatcher.queue().try_send(dispatch) {
                Ok(()) => {}
                Err(e) if e.is_disconnected() => {}
                Err(e) => self.waiting.push_back(Delivery::Dispatch(e.into_inner())),
            }
        } else {
            self.waiting.push_back(Delivery::Dispatch(dispatch));
        }
    }

    fn item(&mut self, key: u64, item: Result<RawValue, Error>) {
        if self.waiting.is_empty() {
            let Some(tx) = self.streams.get_mut(&key) else {
                return;
            };
            match tx.try_send(item) {
                Ok(()) => {}
                Err(e) if e.is_disconnected() => {}
                Err(e) => self.waiting.push_back(Delivery::Item(key, e.into_inner())),
            }
        } else {
            self.waiting.push_back(Delivery::Item(key, item));
        }
    }

    fn end(&mut self, key: u64) {
        if self.waiting.is_empty() {
            self.streams.remove(&key);
        } else {
            self.waiting.push_back(Delivery::End(key));
        }
    }

    /// The consumer let go of the stream: drop what waits for it.
    fn cancel(&mut self, key: u64) {
        self.streams.remove(&key);
    }

    /// Delivers what waits, in order, as far as the queues take it; ready once nothing waits.
    pub(crate) fn poll_flush(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        while let Some(front) = self.waiting.front() {
            let ready = match front {
                Delivery::Dispatch(_) => self.dispatcher.queue().poll_ready(cx),
                Delivery::Item(key, _) => match self.streams.get_mut(key) {
                    Some(tx) => tx.poll_ready(cx),
                    None => Poll::Ready(Ok(())),
                },
                Delivery::End(_) => Poll::Ready(Ok(())),
            };
            if ready.is_pending() {
                return Poll::Pending;
            }
            // On `Ready(Err(_))` the receiver is gone: the delivery is dropped.
            let delivery = self.waiting.pop_front();
            if let Poll::Ready(Ok(())) = ready {
                match delivery {
                    Some(Delivery::Dispatch(d)) => {
                        let _ = self.dispatcher.queue().start_send(d);
                    }
                    Some(Delivery::Item(key, item)) => {
                        if let Some(tx) = self.streams.get_mut(&key) {
                            let _ = tx.start_send(item);
                        }
                    }
                    Some(Delivery::End(key)) => {
                        self.streams.remove(&key);
                    }
                    None => {}
                }
            }
        }
        Poll::Ready(())
    }
}

/// The replies the driver owes, and the streams it feeds.
///
/// Invocations and streams are known by their invocation number (the engine's ids are the
/// decimal form of a counter). A call whose message cannot be written is failed by the engine
/// itself (`InvocationCompleted` or `StreamCompleted` with the error, before `Written`), so
/// only sends and upload items wait for `Written` here.
#[derive(Default)]
pub(crate) struct Pending {
    starts: Vec<Reply<()>>,
    stops: Vec<oneshot::Sender<()>>,
    /// Sends and upload items, by the engine's operation id, until `Written`.
    writes: FastMap<u64, Reply<()>>,
    /// Invocations by invocation number, until their completion.
    invokes: FastMap<u64, Reply<Option<RawValue>>>,
    /// Open streams by invocation number, which is also the key of their sender in
    /// [`Deliveries`].
    streams: FastMap<u64, ()>,
}

impl Pending {
    /// Gives back the room of the empty lists and maps (a burst of calls made them grow).
    pub(crate) fn trim(&mut self) {
        self.starts.give_back_if_empty();
        self.stops.give_back_if_empty();
        self.writes.give_back_if_empty();
        self.invokes.give_back_if_empty();
        self.streams.give_back_if_empty();
    }

    /// Hands `command` to the engine and remembers who waits for its outcome.
    pub(crate) fn command(
        &mut self,
        conn: &mut Connection,
        deliveries: &mut Deliveries,
        now: Instant,
        command: Command,
    ) {
        match command {
            Command::Start(reply) => match conn.start(now) {
                Ok(()) => self.starts.push(reply),
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            Command::Stop(reply) => {
                if conn.state() == State::Disconnected {
                    let _ = reply.send(());
                } else {
                    self.stops.push(reply);
                    conn.stop(now);
                }
            }
            Command::Send {
                target,
                arguments,
                stream_ids,
                reply,
            } => {
                let sent = if stream_ids.is_empty() {
                    conn.send(now, target, arguments)
                } else {
                    conn.send_with_streams(now, target, arguments, stream_ids)
                };
                match sent {
                    Ok(op) => {
                        self.writes.insert(op, reply);
                    }
                    Err(e) => {
                        let _ = reply.send(Err(e.into()));
                    }
                }
            }
            Command::Invoke {
                target,
                arguments,
                stream_ids,
                reply,
            } => match conn.invoke(now, target, arguments, stream_ids) {
                Ok((id, _)) => match invocation_number(&id) {
                    Some(number) => {
                        self.invokes.insert(number, reply);
                    }
                    None => {
                        let _ = reply.send(Err(unknown_id(&id)));
                    }
                },
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            Command::Stream {
                target,
                arguments,
                stream_ids,
                items,
                reply,
            } => match conn.stream(now, target, arguments, stream_ids) {
                Ok((id, _)) => match invocation_number(&id) {
                    Some(number) => {
                        deliveries.streams.insert(number, items);
                        self.streams.insert(number, ());
                        let _ = reply.send(Ok(id));
                    }
                    None => {
                        let _ = reply.send(Err(unknown_id(&id)));
                    }
                },
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            Command::Barrier(reply) => {
                let _ = reply.send(());
            }
            Command::CancelStream(id) => {
                let number = invocation_number(&id);
                if let Some(number) = number.filter(|n| self.streams.remove(n).is_some()) {
                    deliveries.cancel(number);
                    conn.cancel_stream(now, &id);
                }
            }
            Command::NewUploadStream(reply) => {
                let _ = reply.send(conn.new_upload_stream());
            }
            Command::UploadItem {
                stream_id,
                item,
                reply,
            } => match conn.upload_item(now, &stream_id, item) {
                Ok(op) => {
                    self.writes.insert(op, reply);
                }
                Err(e) => {
                    let _ = reply.send(Err(e.into()));
                }
            },
            Command::UploadComplete { stream_id, error } => {
                if let Err(e) = conn.upload_complete(now, &stream_id, error) {
                    tracing::debug!(%stream_id, error = %e, "upload completion not sent");
                }
            }
        }
    }

    /// Ends a stream with `item` (an error) or quietly.
    fn end_stream(deliveries: &mut Deliveries, key: u64, error: Option<Error>) {
        if let Some(e) = error {
            deliveries.item(key, Err(e));
        }
        deliveries.end(key);
    }

    /// Answers whoever waits for what `event` reports, and hands the application its part.
    pub(crate) fn event(
        &mut self,
        conn: &Connection,
        shared: &Shared,
        deliveries: &mut Deliveries,
        event: Event,
    ) {
        match event {
            Event::StateChanged { from, to } => {
                tracing::debug!(?from, ?to, "state changed");
                let id = if to == State::Disconnected {
                    None
                } else {
                    conn.connection_id()
                };
                shared.set(to, id);
            }
            Event::Started { connection_id } => {
                tracing::debug!(?connection_id, "started");
                shared.set(conn.state(), connection_id.as_deref());
                for start in std::mem::take(&mut self.starts) {
                    let _ = start.send(Ok(()));
                }
            }
            Event::StartFailed(error) => {
                tracing::debug!(%error, "start failed");
                for start in self.starts.drain(..) {
                    let _ = start.send(Err(error.clone().into()));
                }
                // A stop() made during the start ended it ("The connection was stopped during
                // negotiation."): the connection is Disconnected, and no Closed follows.
                if conn.state() == State::Disconnected {
                    for stop in self.stops.drain(..) {
                        let _ = stop.send(());
                    }
                }
            }
            Event::Reconnecting(error) => {
                tracing::debug!(%error, "reconnecting");
                deliveries.dispatch(Dispatch::Reconnecting(error.into()));
            }
            Event::Reconnected { connection_id } => {
                tracing::debug!(?connection_id, "reconnected");
                shared.set(conn.state(), connection_id.as_deref());
                deliveries.dispatch(Dispatch::Reconnected(connection_id));
            }
            Event::Closed(error) => {
                tracing::debug!(?error, "closed");
                shared.set(State::Disconnected, None);
                for start in self.starts.drain(..) {
                    let _ = start.send(Err(closed_error()));
                }
                // Pending writes are not failed here: the core reports every one of them
                // (a send whose POST is still in flight may yet reach the server).
                for (_, reply) in self.invokes.drain() {
                    let _ = reply.send(Err(closed_error()));
                }
                for (key, ()) in self.streams.drain() {
                    Self::end_stream(deliveries, key, Some(closed_error()));
                }
                deliveries.dispatch(Dispatch::Closed(error.map(Error::from)));
                for stop in self.stops.drain(..) {
                    let _ = stop.send(());
                }
            }
            Event::Invocation {
                target,
                arguments,
                invocation_id,
            } => {
                deliveries.dispatch(Dispatch::Invocation {
                    target,
                    arguments,
                    invocation_id,
                });
            }
            Event::InvocationCompleted { id, result } => {
                let reply = invocation_number(&id).and_then(|n| self.invokes.remove(&n));
                if let Some(reply) = reply {
                    let _ = reply.send(result.map_err(Error::from));
                }
            }
            Event::StreamItem { id, item } => {
                if let Some(key) = invocation_number(&id).filter(|n| self.streams.contains_key(n)) {
                    deliveries.item(key, Ok(item));
                }
            }
            Event::StreamCompleted { id, result } => {
                let key = invocation_number(&id).filter(|n| self.streams.remove(n).is_some());
                if let Some(key) = key {
                    Self::end_stream(deliveries, key, result.err().map(Error::from));
                }
            }
            Event::Written { op, result } => {
                // Every call's message is reported; only sends and upload items wait here.
                if self.writes.is_empty() {
                    return;
                }
                if let Some(reply) = self.writes.remove(&op) {
                    let _ = reply.send(result.map_err(Error::from));
                }
            }
        }
    }
}

//! The driver task: one per connection. It owns the sans-IO [`Connection`], feeds it user
//! commands, network input, client results and timeouts, and performs what it asks for
//! (`transmit`); `pending` answers the callers. It does no protocol logic of its own.
//!
//! The loop is one `poll_fn` ([`Driver::poll_run`]) that, after draining the engine, polls its
//! sources once each in a fixed order and handles at most one input of each per pass:
//!
//! 1. control commands (start, stop, stream cancellation): never held back;
//! 2. client-result answers;
//! 3. deliveries waiting for the dispatcher or a stream (the transport is not read meanwhile);
//! 4. frames waiting for the socket's writer (calls are not taken meanwhile); what was handed
//!    to the writer is flushed once no source has anything more (one write for a burst);
//! 5. the engine's timer, armed at [`Connection::poll_timeout`] with [`Runtime::sleep_until`];
//! 6. network input (WebSocket events, HTTP outcomes, tokens), unless deliveries wait;
//! 7. calls, unless the writer is behind or the engine's send buffer is full.
//!
//! One pass takes at most one input from each source, so no source starves another; after each
//! input the engine is drained and the gates above are checked again. A source that answered
//! pending is not polled again until the driver is woken ([`Quiet`]; the network also when the
//! driver starts a request, socket or token fetch): it holds the driver's waker, and a look
//! through the WebSocket's reader is the costliest poll of a pass.

use super::commands::{CommandReceiver, ControlReceiver, Shared};
use super::handlers::{ClientResultDone, Registry};
use super::pending::{Deliveries, Pending};
use super::runtime::{BoxFuture, Runtime};
use super::transmit::{Input, Io, TokenFactory};
use crate::{Connection, Instant, State};
use futures_channel::mpsc;
use futures_util::{FutureExt, StreamExt};
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

/// Passes of the loop before the driver yields to its runtime's other tasks.
const BUDGET: usize = 64;

/// A bounded `futures-channel` queue of exactly `capacity` entries (it adds one slot per sender
/// to the buffer it is given).
pub(crate) fn bounded<T>(capacity: usize) -> (mpsc::Sender<T>, mpsc::Receiver<T>) {
    mpsc::channel(capacity.saturating_sub(1))
}

/// Everything the driver needs, created by the builder and spawned at the first call.
pub(crate) struct DriverSeed {
    pub(crate) conn: Connection,
    pub(crate) commands: CommandReceiver,
    pub(crate) control: ControlReceiver,
    pub(crate) token_factory: Option<TokenFactory>,
    pub(crate) registry: Arc<Registry>,
    pub(crate) shared: Arc<Shared>,
    pub(crate) log_message_content: bool,
}

struct Driver {
    runtime: Arc<dyn Runtime>,
    conn: Connection,
    commands: CommandReceiver,
    commands_open: bool,
    /// Start, stop and stream cancellation: never held back by backpressure.
    control: ControlReceiver,
    control_open: bool,
    /// Client-result answers; the queue exists once the handler dispatcher has started.
    results: Option<mpsc::UnboundedReceiver<ClientResultDone>>,
    shared: Arc<Shared>,
    io: Io,
    pending: Pending,
    deliveries: Deliveries,
    /// The armed timer and its deadline (never later than the engine's next deadline).
    timer: Option<(Instant, BoxFuture<()>)>,
    /// The sources found pending since the driver was last woken.
    quiet: Quiet,
}

/// The sources that answered pending since the driver was last woken. Each holds the driver's
/// waker then, so looking again before the next wake-up would find it pending again: later
/// passes skip it. (The network's flag is [`Io`]'s own: starting a request there clears it.)
#[derive(Default)]
struct Quiet {
    control: bool,
    results: bool,
    timer: bool,
    commands: bool,
}

/// Spawns the driver of one connection on `runtime` (its handler dispatcher starts with the
/// first dispatch).
pub(crate) fn spawn(runtime: &Arc<dyn Runtime>, seed: DriverSeed) {
    let max_message_size = seed.conn.config().max_message_size;
    let driver = Driver {
        runtime: runtime.clone(),
        conn: seed.conn,
        commands: seed.commands,
        commands_open: true,
        control: seed.control,
        control_open: true,
        results: None,
        shared: seed.shared,
        io: Io::new(
            runtime.clone(),
            seed.token_factory,
            seed.log_message_content,
            max_message_size,
        ),
        pending: Pending::default(),
        deliveries: Deliveries::new(seed.registry, runtime.clone()),
        timer: None,
        quiet: Quiet::default(),
    };
    runtime.spawn(Box::pin(Run(driver)));
}

/// The driver's task. A future of its own rather than an `async fn`, whose state would hold the
/// driver twice (the argument and the moved-in local: about 2 KB more per connection).
struct Run(Driver);

impl Future for Run {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        let poll = self.0.poll_run(cx);
        if poll.is_ready() {
            // Dropping the driver drops its HTTP requests (aborting them) and its socket.
            tracing::debug!("connection driver finished");
        }
        poll
    }
}

impl Driver {
    /// The loop: drain, check for the end, take one input from each ready source; pending once
    /// no source has anything.
    fn poll_run(&mut self, cx: &mut Context<'_>) -> Poll<()> {
        self.io.woken();
        self.quiet = Quiet::default();
        for _ in 0..BUDGET {
            self.drain(cx);
            if !self.commands_open
                && self.conn.state() == State::Disconnected
                && self.deliveries.is_empty()
            {
                return Poll::Ready(());
            }
            if !self.poll_sources(cx) {
                // Nothing more to take: write what this turn produced, in one flush.
                if self.io.needs_write() {
                    let behind = self.io.is_writer_behind();
                    if self.io.poll_write(cx).is_ready() && behind {
                        continue;
                    }
                }
                return Poll::Pending;
            }
        }
        // Let the runtime's other tasks run (the handlers, the callers), then continue.
        let _ = self.io.poll_write(cx);
        cx.waker().wake_by_ref();
        Poll::Pending
    }

    /// One pass over the sources in their fixed order; whether any had input.
    fn poll_sources(&mut self, cx: &mut Context<'_>) -> bool {
        let mut progressed = false;

        if self.control_open && !self.quiet.control {
            if let Poll::Ready(command) = self.control.poll_next_unpin(cx) {
                progressed = true;
                match command {
                    Some(command) => {
                        let now = self.runtime.now();
                        self.pending
                            .command(&mut self.conn, &mut self.deliveries, now, command);
                    }
                    None => self.control_open = false,
                }
                self.drain(cx);
            } else {
                self.quiet.control = true;
            }
        }

        if self.results.is_none() {
            self.results = self.deliveries.take_results();
        }
        if let Some(results) = self.results.as_mut().filter(|_| !self.quiet.results) {
            if let Poll::Ready(done) = results.poll_next_unpin(cx) {
                match done {
                    Some((id, result)) => {
                        progressed = true;
                        let now = self.runtime.now();
                        self.conn.complete_client_result(now, &id, result);
                        self.drain(cx);
                    }
                    // The dispatcher is gone (it ends only with the driver's queue to it).
                    None => self.results = None,
                }
            } else {
                self.quiet.results = true;
            }
        }

        if !self.deliveries.is_empty() && self.deliveries.poll_flush(cx).is_ready() {
            progressed = true;
        }

        if self.io.is_writer_behind() && self.io.poll_feed(cx).is_ready() {
            progressed = true;
        }

        if self.poll_timer(cx) {
            progressed = true;
        }

        if self.deliveries.is_empty() {
            if let Poll::Ready(input) = self.io.poll_input(cx) {
                progressed = true;
                let now = self.runtime.now();
                match input {
                    Input::Http(id, event) => self.conn.handle_http(now, id, event),
                    Input::WebSocket(event) => self.conn.handle_websocket(now, event),
                    Input::Token(token) => self.conn.handle_access_token(now, token),
                }
                self.drain(cx);
            }
        }

        // Calls wait while the socket's writer is behind or while stateful reconnect's buffer
        // of unacknowledged messages is full (item 91).
        if self.commands_open
            && !self.quiet.commands
            && !self.io.is_writer_behind()
            && !self.conn.is_send_blocked()
        {
            if let Poll::Ready(command) = self.commands.poll_next(cx) {
                progressed = true;
                let now = self.runtime.now();
                match command {
                    Some(command) => {
                        self.pending
                            .command(&mut self.conn, &mut self.deliveries, now, command);
                    }
                    None => {
                        self.commands_open = false;
                        if self.conn.state() != State::Disconnected {
                            self.conn.stop(now);
                        }
                    }
                }
                self.drain(cx);
            } else {
                self.quiet.commands = true;
            }
        }

        progressed
    }

    /// Arms the timer at the engine's next deadline and polls it; whether it fired. A timer
    /// armed for an earlier deadline is kept (no new timer per message while the deadlines move
    /// later): when it fires early, it is re-armed.
    fn poll_timer(&mut self, cx: &mut Context<'_>) -> bool {
        let Some(deadline) = self.conn.poll_timeout() else {
            self.timer = None;
            return false;
        };
        match &self.timer {
            Some((armed, _)) if *armed <= deadline => {
                if self.quiet.timer {
                    return false;
                }
            }
            _ => self.timer = Some((deadline, self.runtime.sleep_until(deadline))),
        }
        let Some((_, sleep)) = &mut self.timer else {
            return false;
        };
        if sleep.poll_unpin(cx).is_pending() {
            self.quiet.timer = true;
            return false;
        }
        self.timer = None;
        let now = self.runtime.now();
        if now >= deadline {
            self.conn.handle_timeout(now);
            self.drain(cx);
            // Timers are what an idle connection still sees: give back the room that a burst
            // of calls made the driver's queues and maps grow to.
            self.pending.trim();
            self.deliveries.trim();
            self.io.trim();
        }
        true
    }

    /// Drains the engine's transmits and events until it has nothing more to say.
    fn drain(&mut self, cx: &mut Context<'_>) {
        loop {
            let mut progressed = false;
            while let Some(transmit) = self.conn.poll_transmit() {
                progressed = true;
                self.io.perform(&mut self.conn, transmit, cx);
            }
            while let Some(event) = self.conn.poll_event() {
                progressed = true;
                self.pending
                    .event(&self.conn, &self.shared, &mut self.deliveries, event);
            }
            if !progressed {
                break;
            }
        }
    }
}

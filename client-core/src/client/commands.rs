//! The messages between the API and the driver task, and the state the API reads without asking.

use super::error::Error;
use crate::protocol::RawValue;
use crate::State;
use futures_channel::{mpsc, oneshot};
use std::collections::VecDeque;
use std::future::poll_fn;
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::{Context, Poll, Waker};

/// Calls queued from the API to the driver.
pub(crate) const COMMAND_QUEUE: usize = 128;

/// Control commands (start, stop, cancel) queued from the API to the driver.
pub(crate) const CONTROL_QUEUE: usize = 32;

/// Items buffered per stream before the driver waits for the consumer.
pub(crate) const STREAM_BUFFER: usize = 64;

/// A reply channel.
pub(crate) type Reply<T> = oneshot::Sender<Result<T, Error>>;

/// The sending side of a stream's items (the driver's; [`super::HubStream`] receives).
pub(crate) type ItemSender = mpsc::Sender<Result<RawValue, Error>>;

/// The receiving side of a stream's items.
pub(crate) type ItemReceiver = mpsc::Receiver<Result<RawValue, Error>>;

/// The driver's end of the control queue.
pub(crate) type ControlReceiver = mpsc::Receiver<Command>;

/// What the public API asks the driver to do.
pub(crate) enum Command {
    Start(Reply<()>),
    Stop(oneshot::Sender<()>),
    Send {
        target: String,
        arguments: Vec<RawValue>,
        stream_ids: Vec<String>,
        reply: Reply<()>,
    },
    Invoke {
        target: String,
        arguments: Vec<RawValue>,
        stream_ids: Vec<String>,
        reply: Reply<Option<RawValue>>,
    },
    Stream {
        target: String,
        arguments: Vec<RawValue>,
        stream_ids: Vec<String>,
        items: ItemSender,
        reply: Reply<String>,
    },
    /// Answered when reached: `stop` waits for the calls queued before it.
    Barrier(oneshot::Sender<()>),
    CancelStream(String),
    NewUploadStream(oneshot::Sender<String>),
    UploadItem {
        stream_id: String,
        item: RawValue,
        reply: Reply<()>,
    },
    UploadComplete {
        stream_id: String,
        error: Option<String>,
    },
}

/// The error of a call whose driver task is gone.
pub(crate) fn gone() -> Error {
    Error::Runtime("the connection's driver task has stopped (its runtime shut down)".into())
}

/// The queue of calls from the API (every clone of a connection, and uploads in progress) to
/// the driver: at most `capacity` commands, in order.
///
/// A queue of its own rather than a `futures-channel` one, which allocates a node per message
/// and needs a sender of its own per waiting caller: here a command moves into a ring buffer
/// under a lock that is never held across anything but the move, and the buffer is let go
/// whenever the driver empties it (an idle connection keeps none).
struct Queue {
    state: Mutex<QueueState>,
}

struct QueueState {
    items: VecDeque<Command>,
    capacity: usize,
    /// Live [`Commands`] handles; the driver sees the end of the queue when none is left.
    senders: usize,
    /// The driver's end is gone: nothing more will be taken.
    closed: bool,
    /// The driver, waiting for a command.
    receiver: Option<Waker>,
    /// Callers waiting for room (each woken when room frees up; each then tries again).
    waiting: Vec<Waker>,
}

impl Queue {
    fn lock(&self) -> MutexGuard<'_, QueueState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The driver's end of the command queue.
pub(crate) struct CommandReceiver {
    queue: Arc<Queue>,
}

impl CommandReceiver {
    /// The next command; `None` once every [`Commands`] handle is gone and the queue is empty.
    pub(crate) fn poll_next(&mut self, cx: &mut Context<'_>) -> Poll<Option<Command>> {
        let mut state = self.queue.lock();
        if let Some(command) = state.items.pop_front() {
            if state.items.is_empty() {
                // Between bursts the buffer is let go (calls that wait for replies leave it
                // empty most of the time).
                state.items = VecDeque::new();
            }
            let waiting = std::mem::take(&mut state.waiting);
            drop(state);
            waiting.into_iter().for_each(Waker::wake);
            return Poll::Ready(Some(command));
        }
        if state.senders == 0 {
            return Poll::Ready(None);
        }
        match &state.receiver {
            Some(waker) if waker.will_wake(cx.waker()) => {}
            _ => state.receiver = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

impl Drop for CommandReceiver {
    fn drop(&mut self) {
        let mut state = self.queue.lock();
        state.closed = true;
        let items = std::mem::take(&mut state.items);
        let waiting = std::mem::take(&mut state.waiting);
        drop(state);
        // Dropping the commands drops their reply senders: their callers learn that the driver
        // is gone.
        drop(items);
        waiting.into_iter().for_each(Waker::wake);
    }
}

/// A handle on the command queue: every clone of a connection shares one (in its shared
/// state), and each upload in progress holds one of its own.
pub(crate) struct Commands {
    queue: Arc<Queue>,
}

impl Clone for Commands {
    fn clone(&self) -> Self {
        self.queue.lock().senders += 1;
        Commands {
            queue: self.queue.clone(),
        }
    }
}

impl Drop for Commands {
    fn drop(&mut self) {
        let mut state = self.queue.lock();
        state.senders -= 1;
        let receiver = if state.senders == 0 {
            state.receiver.take()
        } else {
            None
        };
        drop(state);
        if let Some(waker) = receiver {
            waker.wake();
        }
    }
}

impl Commands {
    /// A queue of `capacity` entries and its receiving end.
    pub(crate) fn new(capacity: usize) -> (Self, CommandReceiver) {
        let queue = Arc::new(Queue {
            state: Mutex::new(QueueState {
                items: VecDeque::new(),
                capacity: capacity.max(1),
                senders: 1,
                closed: false,
                receiver: None,
                waiting: Vec::new(),
            }),
        });
        (
            Commands {
                queue: queue.clone(),
            },
            CommandReceiver { queue },
        )
    }

    /// Queues `command`, waiting while the queue is full.
    pub(crate) async fn send(&self, command: Command) -> Result<(), Error> {
        let mut command = Some(command);
        poll_fn(|cx| {
            let mut state = self.queue.lock();
            if state.closed {
                return Poll::Ready(Err(gone()));
            }
            if state.items.len() < state.capacity {
                if let Some(command) = command.take() {
                    if state.items.capacity() == 0 {
                        state.items.reserve(8);
                    }
                    state.items.push_back(command);
                }
                let receiver = state.receiver.take();
                drop(state);
                if let Some(waker) = receiver {
                    waker.wake();
                }
                return Poll::Ready(Ok(()));
            }
            if !state.waiting.iter().any(|w| w.will_wake(cx.waker())) {
                state.waiting.push(cx.waker().clone());
            }
            Poll::Pending
        })
        .await
    }
}

/// The API's end of the control queue (start, stop, stream cancellation), shared by every
/// clone of a connection.
///
/// A `futures-channel` sender needs `&mut` to send, and each clone of one owns a slot of its
/// own: the shared sender is tried first (no allocation per call); while it waits for room, a
/// caller sends through a clone of its own, which waits with `poll_ready`.
#[derive(Debug)]
pub(crate) struct Control {
    tx: Mutex<mpsc::Sender<Command>>,
}

impl Control {
    /// A queue of `capacity` entries and its receiving end.
    pub(crate) fn new(capacity: usize) -> (Self, ControlReceiver) {
        let (tx, rx) = super::driver::bounded(capacity);
        (Control { tx: Mutex::new(tx) }, rx)
    }

    /// Queues `command`, waiting while the queue is full.
    pub(crate) async fn send(&self, command: Command) -> Result<(), Error> {
        let (command, mut tx) = {
            let mut tx = self.tx.lock().unwrap_or_else(|e| e.into_inner());
            match tx.try_send(command) {
                Ok(()) => return Ok(()),
                Err(e) if e.is_disconnected() => return Err(gone()),
                Err(e) => (e.into_inner(), tx.clone()),
            }
        };
        poll_fn(|cx| tx.poll_ready(cx)).await.map_err(|_| gone())?;
        tx.start_send(command).map_err(|_| gone())
    }

    /// A sender of its own (for a stream's cancellation).
    pub(crate) fn sender(&self) -> mpsc::Sender<Command> {
        self.tx.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// The state the API reads without asking the driver.
#[derive(Debug)]
pub(crate) struct Shared {
    status: Mutex<(State, Option<String>)>,
}

impl Shared {
    pub(crate) fn new() -> Self {
        Shared {
            status: Mutex::new((State::Disconnected, None)),
        }
    }

    pub(crate) fn state(&self) -> State {
        self.status.lock().unwrap_or_else(|e| e.into_inner()).0
    }

    pub(crate) fn connection_id(&self) -> Option<String> {
        self.status
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .1
            .clone()
    }

    pub(crate) fn set(&self, state: State, connection_id: Option<&str>) {
        let mut status = self.status.lock().unwrap_or_else(|e| e.into_inner());
        status.0 = state;
        if status.1.as_deref() != connection_id {
            status.1 = connection_id.map(str::to_string);
        }
    }
}

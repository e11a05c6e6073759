//! The messages between the API and the driver task, and the state the API reads without asking.

use super::error::Error;
use crate::protocol::RawValue;
use crate::State;
use futures_channel::{mpsc, oneshot};
use std::future::poll_fn;
use std::sync::Mutex;

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

/// The driver's end of a command queue.
pub(crate) type CommandReceiver = mpsc::Receiver<Command>;

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

/// The API's end of a command queue, shared by every clone of a connection.
///
/// A `futures-channel` sender needs `&mut` to send, and each clone of one owns a slot of its
/// own: the shared sender is tried first (no allocation per call); while it waits for room, a
/// caller sends through a clone of its own, which waits with `poll_ready`. A caller has one
/// command in the queue at a time and then waits for its reply, so the queue holds at most
/// [`COMMAND_QUEUE`] entries plus one per waiting caller, as tokio's queue did (where the
/// waiting caller held its command).
#[derive(Debug)]
pub(crate) struct Commands {
    tx: Mutex<mpsc::Sender<Command>>,
}

impl Commands {
    /// A queue of `capacity` entries and its receiving end.
    pub(crate) fn new(capacity: usize) -> (Self, CommandReceiver) {
        let (tx, rx) = super::driver::bounded(capacity);
        (Commands { tx: Mutex::new(tx) }, rx)
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

    /// A sender of its own (for a stream's cancellation or an upload's items).
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

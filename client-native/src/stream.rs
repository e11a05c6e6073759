//! [`HubStream`]: the items of a server-to-client stream, as a `futures::Stream`.

use crate::driver::{Command, CommandSender};
use crate::error::{Error, Result};
use futures::Stream;
use std::pin::Pin;
use std::task::{ready, Context, Poll};
use talkback_core::protocol::RawValue;
use tokio::sync::mpsc;

/// The items of a stream started with [`crate::HubConnection::stream`], in order.
///
/// The stream ends (`None`) when the server completes it, after an `Err` item when the server
/// completes it with an error or the connection closes. Dropping it before the end cancels the
/// stream on the server (`CancelInvocation`); items that arrive afterwards are ignored.
pub struct HubStream<T> {
    id: String,
    items: mpsc::Receiver<Result<RawValue>>,
    commands: CommandSender,
    decode: fn(RawValue) -> Result<T>,
    finished: bool,
}

impl<T> std::fmt::Debug for HubStream<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("HubStream")
            .field("id", &self.id)
            .field("finished", &self.finished)
            .finish_non_exhaustive()
    }
}

impl<T> HubStream<T> {
    pub(crate) fn new(
        id: String,
        items: mpsc::Receiver<Result<RawValue>>,
        commands: CommandSender,
        decode: fn(RawValue) -> Result<T>,
    ) -> Self {
        HubStream {
            id,
            items,
            commands,
            decode,
            finished: false,
        }
    }

    /// The invocation id of the stream.
    pub fn invocation_id(&self) -> &str {
        &self.id
    }
}

impl<T> Unpin for HubStream<T> {}

impl<T> Stream for HubStream<T> {
    type Item = Result<T>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.finished {
            return Poll::Ready(None);
        }
        match ready!(self.items.poll_recv(cx)) {
            None => {
                self.finished = true;
                Poll::Ready(None)
            }
            Some(Ok(raw)) => Poll::Ready(Some((self.decode)(raw))),
            Some(Err(e)) => {
                self.finished = true;
                Poll::Ready(Some(Err(e)))
            }
        }
    }
}

impl<T> Drop for HubStream<T> {
    fn drop(&mut self) {
        if self.finished {
            return;
        }
        let command = Box::new(Command::CancelStream(std::mem::take(&mut self.id)));
        match self.commands.try_send(command) {
            Ok(()) | Err(mpsc::error::TrySendError::Closed(_)) => {}
            Err(mpsc::error::TrySendError::Full(command)) => {
                // The queue is busy: cancel from a task instead of blocking in `drop`.
                if let Ok(runtime) = tokio::runtime::Handle::try_current() {
                    let commands = self.commands.clone();
                    runtime.spawn(async move {
                        let _ = commands.send(command).await;
                    });
                }
            }
        }
    }
}

/// Decodes a stream item into `T`.
pub(crate) fn decode_item<T: serde::de::DeserializeOwned>(raw: RawValue) -> Result<T> {
    raw.decode().map_err(Error::Decode)
}

/// Keeps a stream item encoded.
pub(crate) fn keep_raw(raw: RawValue) -> Result<RawValue> {
    Ok(raw)
}

//! [`HubStream`]: the items of a server-to-client stream, as a `futures` `Stream`.

use super::commands::{Command, ItemReceiver};
use super::error::{Error, Result};
use crate::protocol::RawValue;
use futures_channel::mpsc;
use futures_core::Stream;
use std::pin::Pin;
use std::task::{ready, Context, Poll};

/// The items of a stream started with [`super::HubConnection::stream`], in order.
///
/// The stream ends (`None`) when the server completes it, after an `Err` item when the server
/// completes it with an error or the connection closes. Dropping it before the end cancels the
/// stream on the server (`CancelInvocation`); items that arrive afterwards are ignored.
pub struct HubStream<T> {
    id: String,
    items: ItemReceiver,
    /// A sender of its own on the control queue: its guaranteed slot lets `drop` queue the
    /// cancellation without waiting and without a task.
    control: mpsc::Sender<Command>,
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
        items: ItemReceiver,
        control: mpsc::Sender<Command>,
        decode: fn(RawValue) -> Result<T>,
    ) -> Self {
        HubStream {
            id,
            items,
            control,
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
        match ready!(Pin::new(&mut self.items).poll_next(cx)) {
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
        // This sender has sent nothing yet, so its own slot is free: the cancellation is queued
        // even when the control queue is full (an error means the driver is gone).
        let _ = self
            .control
            .try_send(Command::CancelStream(std::mem::take(&mut self.id)));
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

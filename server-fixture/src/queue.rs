//! A small bounded multi-producer, single-consumer queue for the per-connection pipes.
//!
//! Why not `tokio::sync::mpsc`: each tokio channel allocates, when it is created, a block of 32
//! slots and a channel header padded to cache lines (about 1.5 KB for a 32-byte message), and a
//! connection has four of them. An idle connection then costs several KB in empty queues. This
//! queue is a `VecDeque` under a lock that holds no storage while empty (it is released every
//! time the queue drains), with two [`Notify`]s to wake the receiver and waiting senders: about
//! 150 bytes per idle queue. The API follows tokio's (`send`, `try_send`, `reserve`, `recv`,
//! `try_recv`), so the code around it reads the same.
//!
//! **Bound**: at most `capacity` messages are queued or reserved at once; `send` and `reserve`
//! wait for room, `try_send` fails with [`TrySendError::Full`].

use parking_lot::Mutex;
use std::collections::VecDeque;
use std::sync::Arc;
use tokio::sync::Notify;

struct State<T> {
    queue: VecDeque<T>,
    /// Slots promised to [`Permit`]s not yet used.
    reserved: usize,
    senders: usize,
    receiver_alive: bool,
}

struct Chan<T> {
    state: Mutex<State<T>>,
    capacity: usize,
    /// Wakes the receiver: a message arrived or the last sender left.
    readable: Notify,
    /// Wakes a waiting sender: room was made or the receiver left.
    writable: Notify,
}

/// Creates a queue that holds at most `capacity` messages (at least 1).
pub(crate) fn channel<T>(capacity: usize) -> (Sender<T>, Receiver<T>) {
    let chan = Arc::new(Chan {
        state: Mutex::new(State {
            queue: VecDeque::new(),
            reserved: 0,
            senders: 1,
            receiver_alive: true,
        }),
        capacity: capacity.max(1),
        readable: Notify::new(),
        writable: Notify::new(),
    });
    (Sender { chan: chan.clone() }, Receiver { chan })
}

/// The sending half (cloneable).
pub(crate) struct Sender<T> {
    chan: Arc<Chan<T>>,
}

/// The receiving half.
pub(crate) struct Receiver<T> {
    chan: Arc<Chan<T>>,
}

/// The receiver is gone; the message comes back.
#[derive(Debug)]
pub(crate) struct SendError<T>(#[allow(dead_code)] pub T);

/// Why [`Sender::try_send`] failed; the message comes back.
#[derive(Debug)]
pub(crate) enum TrySendError<T> {
    /// The queue holds `capacity` messages.
    Full(T),
    /// The receiver is gone.
    Closed(T),
}

/// Why [`Receiver::try_recv`] returned nothing.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum TryRecvError {
    /// Nothing queued right now.
    Empty,
    /// Nothing queued and every sender is gone.
    Disconnected,
}

/// A slot reserved by [`Sender::reserve`]; dropping it unused gives the slot back.
pub(crate) struct Permit<'a, T> {
    chan: &'a Chan<T>,
}

impl<T> std::fmt::Debug for Sender<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Sender")
            .field("capacity", &self.chan.capacity)
            .finish_non_exhaustive()
    }
}

impl<T> std::fmt::Debug for Receiver<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Receiver")
            .field("capacity", &self.chan.capacity)
            .finish_non_exhaustive()
    }
}

impl<T> Clone for Sender<T> {
    fn clone(&self) -> Self {
        self.chan.state.lock().senders += 1;
        Sender {
            chan: self.chan.clone(),
        }
    }
}

impl<T> Drop for Sender<T> {
    fn drop(&mut self) {
        let last = {
            let mut state = self.chan.state.lock();
            state.senders -= 1;
            state.senders == 0
        };
        if last {
            self.chan.readable.notify_one();
        }
    }
}

impl<T> Drop for Receiver<T> {
    fn drop(&mut self) {
        let dropped = {
            let mut state = self.chan.state.lock();
            state.receiver_alive = false;
            std::mem::take(&mut state.queue)
        };
        // Dropped outside the lock (a message may own anything).
        drop(dropped);
        self.chan.writable.notify_waiters();
    }
}

impl<T> Chan<T> {
    /// Queues `value` if there is room (the caller holds no permit).
    fn try_push(&self, value: T) -> Result<(), TrySendError<T>> {
        self.try_push_within(value, self.capacity)
    }

    /// Queues `value` if fewer than `limit` (at most the capacity) slots are taken.
    fn try_push_within(&self, value: T, limit: usize) -> Result<(), TrySendError<T>> {
        {
            let mut state = self.state.lock();
            if !state.receiver_alive {
                return Err(TrySendError::Closed(value));
            }
            if state.queue.len() + state.reserved >= limit.min(self.capacity) {
                return Err(TrySendError::Full(value));
            }
            state.queue.push_back(value);
        }
        self.readable.notify_one();
        Ok(())
    }
}

impl<T> Sender<T> {
    /// Queues `value`, waiting while the queue is full; fails when the receiver is gone.
    /// Cancel-safe: dropped while waiting, nothing was queued.
    pub(crate) async fn send(&self, value: T) -> Result<(), SendError<T>> {
        self.send_within(value, self.chan.capacity).await
    }

    /// Like [`send`](Self::send), but waits while `limit` or more slots are taken, so a
    /// producer that waits for room (a server stream) leaves the rest of the queue to senders
    /// that do not wait (a full queue aborts the connection as a slow consumer).
    pub(crate) async fn send_within(&self, value: T, limit: usize) -> Result<(), SendError<T>> {
        let mut value = value;
        loop {
            let writable = self.chan.writable.notified();
            tokio::pin!(writable);
            writable.as_mut().enable();
            match self.chan.try_push_within(value, limit.max(1)) {
                Ok(()) => return Ok(()),
                Err(TrySendError::Closed(v)) => return Err(SendError(v)),
                Err(TrySendError::Full(v)) => value = v,
            }
            writable.await;
        }
    }

    /// Queues `value` if there is room right now.
    pub(crate) fn try_send(&self, value: T) -> Result<(), TrySendError<T>> {
        self.chan.try_push(value)
    }

    /// Waits for room and reserves it; fails once the receiver is gone. Cancel-safe.
    pub(crate) async fn reserve(&self) -> Result<Permit<'_, T>, SendError<()>> {
        loop {
            let writable = self.chan.writable.notified();
            tokio::pin!(writable);
            writable.as_mut().enable();
            {
                let mut state = self.chan.state.lock();
                if !state.receiver_alive {
                    return Err(SendError(()));
                }
                if state.queue.len() + state.reserved < self.chan.capacity {
                    state.reserved += 1;
                    return Ok(Permit { chan: &self.chan });
                }
            }
            writable.await;
        }
    }

    /// Room left right now.
    pub(crate) fn capacity(&self) -> usize {
        let state = self.chan.state.lock();
        self.chan
            .capacity
            .saturating_sub(state.queue.len() + state.reserved)
    }

    /// The bound given to [`channel`].
    pub(crate) fn max_capacity(&self) -> usize {
        self.chan.capacity
    }
}

impl<T> Permit<'_, T> {
    /// Queues `value` in the reserved slot (dropped if the receiver is gone meanwhile).
    pub(crate) fn send(self, value: T) {
        let chan = self.chan;
        std::mem::forget(self);
        let refused = {
            let mut state = chan.state.lock();
            state.reserved -= 1;
            if state.receiver_alive {
                state.queue.push_back(value);
                None
            } else {
                Some(value)
            }
        };
        drop(refused);
        chan.readable.notify_one();
    }
}

impl<T> Drop for Permit<'_, T> {
    fn drop(&mut self) {
        self.chan.state.lock().reserved -= 1;
        self.chan.writable.notify_one();
    }
}

impl<T> Receiver<T> {
    /// Takes the next message under the lock; frees the storage once the queue drained.
    fn pop(&self) -> Result<T, TryRecvError> {
        let popped = {
            let mut state = self.chan.state.lock();
            match state.queue.pop_front() {
                Some(value) => {
                    if state.queue.is_empty() && state.queue.capacity() > 0 {
                        // An idle connection holds no queue storage.
                        state.queue = VecDeque::new();
                    }
                    Ok(value)
                }
                None if state.senders == 0 => Err(TryRecvError::Disconnected),
                None => Err(TryRecvError::Empty),
            }
        };
        if popped.is_ok() {
            self.chan.writable.notify_one();
        }
        popped
    }

    /// The next message, waiting for one; `None` once the queue is empty and every sender is
    /// gone. Cancel-safe.
    pub(crate) async fn recv(&mut self) -> Option<T> {
        loop {
            let readable = self.chan.readable.notified();
            tokio::pin!(readable);
            readable.as_mut().enable();
            match self.pop() {
                Ok(value) => return Some(value),
                Err(TryRecvError::Disconnected) => return None,
                Err(TryRecvError::Empty) => readable.await,
            }
        }
    }

    /// The next message if one is queued.
    pub(crate) fn try_recv(&mut self) -> Result<T, TryRecvError> {
        self.pop()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::FutureExt;

    #[tokio::test]
    async fn messages_arrive_in_order_and_the_bound_holds() {
        let (tx, mut rx) = channel(2);
        tx.send(1).await.unwrap();
        tx.try_send(2).unwrap();
        assert!(matches!(tx.try_send(3), Err(TrySendError::Full(3))));
        assert_eq!(tx.capacity(), 0);
        let mut blocked = Box::pin(tx.send(3));
        assert!((&mut blocked).now_or_never().is_none(), "waits for room");
        assert_eq!(rx.recv().await, Some(1));
        blocked.await.unwrap();
        assert_eq!(rx.try_recv(), Ok(2));
        assert_eq!(rx.recv().await, Some(3));
        assert_eq!(rx.try_recv(), Err(TryRecvError::Empty));
        drop(tx);
        assert_eq!(rx.recv().await, None);
        assert_eq!(rx.try_recv(), Err(TryRecvError::Disconnected));
    }

    #[tokio::test]
    async fn a_sender_within_a_limit_leaves_the_rest_of_the_queue_to_others() {
        let (tx, mut rx) = channel(4);
        tx.send_within(1, 2).await.unwrap();
        tx.send_within(2, 2).await.unwrap();
        let mut blocked = Box::pin(tx.send_within(3, 2));
        assert!(
            (&mut blocked).now_or_never().is_none(),
            "waits at its limit"
        );
        tx.try_send(10).unwrap();
        tx.try_send(11).unwrap();
        assert!(matches!(tx.try_send(12), Err(TrySendError::Full(12))));
        for expected in [1, 2, 10] {
            assert_eq!(rx.recv().await, Some(expected));
        }
        blocked.await.unwrap();
        assert_eq!(rx.recv().await, Some(11));
        assert_eq!(rx.recv().await, Some(3));
    }

    #[tokio::test]
    async fn a_permit_holds_a_slot_until_used_or_dropped() {
        let (tx, mut rx) = channel(1);
        let permit = tx.reserve().await.unwrap();
        assert!(matches!(tx.try_send(1), Err(TrySendError::Full(1))));
        drop(permit);
        let permit = tx.reserve().await.unwrap();
        permit.send(7);
        assert_eq!(rx.recv().await, Some(7));
        assert_eq!(tx.capacity(), 1);
        assert_eq!(tx.max_capacity(), 1);
    }

    #[tokio::test]
    async fn senders_see_the_receiver_leave_and_waiting_senders_wake() {
        let (tx, rx) = channel(1);
        tx.send(1).await.unwrap();
        let tx2 = tx.clone();
        let waiting = tokio::spawn(async move { tx2.send(2).await.is_err() });
        tokio::task::yield_now().await;
        drop(rx);
        assert!(waiting.await.unwrap(), "the waiting send fails");
        assert!(matches!(tx.try_send(3), Err(TrySendError::Closed(3))));
        assert!(tx.reserve().await.is_err());
    }

    #[tokio::test]
    async fn the_receiver_wakes_for_a_message_sent_from_another_task() {
        let (tx, mut rx) = channel::<u32>(4);
        let sender = tokio::spawn(async move {
            for i in 0..100 {
                tx.send(i).await.unwrap();
            }
        });
        for i in 0..100 {
            assert_eq!(rx.recv().await, Some(i));
        }
        sender.await.unwrap();
        assert_eq!(rx.recv().await, None);
    }
}

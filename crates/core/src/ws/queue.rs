//! The queue of a connection's outgoing messages: many senders (any thread), one receiver (the
//! connection's task).
//!
//! A `VecDeque` under a mutex rather than tokio's unbounded channel, because an idle connection
//! is the common case on a busy server: the channel allocates a block of 32 slots up front
//! (over a kilobyte per connection), the empty deque nothing, and a drained deque gives its
//! memory back.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::task::{Context, Poll, Waker};

use super::Outgoing;

/// A drained queue keeps at most this many slots.
const KEEP: usize = 16;

#[derive(Default)]
pub(crate) struct Queue {
    inner: Mutex<Inner>,
}

#[derive(Default)]
struct Inner {
    items: VecDeque<Outgoing>,
    closed: bool,
    /// A [`Queue::nudge`] not yet seen by [`Queue::poll_nudge`].
    nudged: bool,
    waker: Option<Waker>,
}

/// The queue is empty (and still open).
#[derive(Debug)]
pub(crate) struct Empty;

impl Queue {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues `msg` without waking the receiver: the caller wakes the returned waker (if any)
    /// later, e.g. from an I/O thread, where waking is cheaper.
    pub(crate) fn send_no_wake(&self, msg: Outgoing) -> Result<Option<Waker>, Outgoing> {
        let mut q = self.lock();
        if q.closed {
            return Err(msg);
        }
        q.items.push_back(msg);
        Ok(q.waker.take())
    }

    /// Queues `msg` and wakes the receiver; gives the message back when the queue is closed.
    pub(crate) fn send(&self, msg: Outgoing) -> Result<(), Outgoing> {
        if let Some(waker) = self.send_no_wake(msg)? {
            waker.wake();
        }
        Ok(())
    }

    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed
    }

    /// Refuses further messages and drops the queued ones.
    pub(crate) fn close(&self) {
        let mut q = self.lock();
        q.closed = true;
        q.items = VecDeque::new();
        q.waker = None;
    }

    fn pop(q: &mut Inner) -> Option<Outgoing> {
        let msg = q.items.pop_front();
        if q.items.is_empty() && q.items.capacity() > KEEP {
            q.items = VecDeque::new();
        }
        msg
    }

    /// The next message without waiting.
    pub(crate) fn try_recv(&self) -> Result<Outgoing, Empty> {
        Self::pop(&mut self.lock()).ok_or(Empty)
    }

    /// Wakes the receiver's [`Queue::poll_nudge`] (once, however many nudges come before it
    /// looks), also while it takes no messages. Cheaper per connection than a `Notify`.
    pub(crate) fn nudge(&self) {
        let waker = {
            let mut q = self.lock();
            q.nudged = true;
            q.waker.take()
        };
        if let Some(waker) = waker {
            waker.wake();
        }
    }

    /// Ready once after one or more [`Queue::nudge`]s. Shares the waker slot of
    /// [`Queue::poll_recv`]: both are polled by the one receiving task.
    pub(crate) fn poll_nudge(&self, cx: &mut Context<'_>) -> Poll<()> {
        let mut q = self.lock();
        if std::mem::take(&mut q.nudged) {
            return Poll::Ready(());
        }
        match &q.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => q.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }

    /// Waits for the next message; `None` once the queue is closed.
    pub(crate) fn poll_recv(&self, cx: &mut Context<'_>) -> Poll<Option<Outgoing>> {
        let mut q = self.lock();
        if let Some(msg) = Self::pop(&mut q) {
            return Poll::Ready(Some(msg));
        }
        if q.closed {
            return Poll::Ready(None);
        }
        match &q.waker {
            Some(w) if w.will_wake(cx.waker()) => {}
            _ => q.waker = Some(cx.waker().clone()),
        }
        Poll::Pending
    }
}

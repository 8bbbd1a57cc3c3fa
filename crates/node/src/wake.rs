//! Waking the JS thread for work queued by the I/O threads.
//!
//! Queues (HTTP requests, WebSocket events) are drained by JS in batches: the I/O side calls
//! [`JsWake::schedule`] after queueing, and JS is woken through a threadsafe function with no
//! arguments, then takes everything waiting with one call. The wake-up is left to a notifier task
//! that first yields to the other tasks ready on the I/O thread, as long as the sockets keep
//! bringing more work, so that a busy server wakes JS once per large batch rather than once per
//! request or message. Waking a sleeping thread is the dearest part of the crossing.

use std::sync::atomic::Ordering::{AcqRel, Relaxed, Release};
use std::sync::atomic::{AtomicBool, AtomicUsize};
use std::sync::{Arc, Weak};

use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use tokio::sync::Notify;

/// Called with no arguments when a queue has work and JS had taken everything before.
pub(crate) type WakeCallback = ThreadsafeFunction<(), (), (), Status, false, true>;

/// The wake-up side of one queue.
pub(crate) struct JsWake {
    scheduled: AtomicBool,
    /// Counts the work queued, so the notifier can see whether more is still coming.
    queued: Arc<AtomicUsize>,
    notify: Arc<Notify>,
}

impl JsWake {
    /// Starts the notifier task, which calls `callback` and ends when the `JsWake` is dropped.
    pub(crate) fn new(callback: WakeCallback) -> Arc<JsWake> {
        let notify = Arc::new(Notify::new());
        let queued = Arc::new(AtomicUsize::new(0));
        let wake = Arc::new(JsWake {
            scheduled: AtomicBool::new(false),
            queued: queued.clone(),
            notify: notify.clone(),
        });
        napi::bindgen_prelude::spawn(notifier(Arc::downgrade(&wake), notify, queued, callback));
        wake
    }

    /// Work was queued: wake JS unless a wake-up is already on its way.
    pub(crate) fn schedule(&self) {
        self.queued.fetch_add(1, Relaxed);
        if !self.scheduled.swap(true, AcqRel) {
            self.notify.notify_one();
        }
    }

    /// JS is about to take the queue: work queued after this schedules a new wake-up. Call it
    /// before taking, never after, or work queued in between would wait unseen.
    pub(crate) fn taking(&self) {
        self.scheduled.store(false, Release);
    }
}

impl Drop for JsWake {
    fn drop(&mut self) {
        // Lets the notifier see that the queue is gone and end.
        self.notify.notify_one();
    }
}

/// At most this many turns of the I/O thread are waited for before JS is woken.
const MAX_YIELDS: usize = 8;

async fn notifier(
    wake: Weak<JsWake>,
    notify: Arc<Notify>,
    queued: Arc<AtomicUsize>,
    callback: WakeCallback,
) {
    loop {
        notify.notified().await;
        // Let the connection tasks that are ready now queue their work first, and keep letting
        // them while each turn of the I/O thread (a poll of the sockets) still adds some: a
        // busy server then wakes JS once per large batch, an idle one after a single turn.
        let mut seen = queued.load(Relaxed);
        for _ in 0..MAX_YIELDS {
            tokio::task::yield_now().await;
            let now = queued.load(Relaxed);
            if now == seen {
                break;
            }
            seen = now;
        }
        if wake.strong_count() == 0 {
            return;
        }
        callback.call((), ThreadsafeFunctionCallMode::NonBlocking);
    }
}

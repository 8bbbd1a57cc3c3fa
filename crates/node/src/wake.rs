//! Waking the JS thread for work queued by the I/O threads.
//!
//! Queues (HTTP requests, WebSocket events) are drained by JS in batches: the I/O side calls
//! [`JsWake::schedule`] after queueing, and JS is woken through a threadsafe function with no
//! arguments, then takes everything waiting with one call. The wake-up is left to a notifier task
//! that first yields to the other tasks ready on the I/O thread, so that everything that arrived
//! with the same poll of the sockets joins the batch: a busy server wakes JS once per poll, not
//! once per request or message.

use std::sync::atomic::AtomicBool;
use std::sync::atomic::Ordering::{AcqRel, Release};
use std::sync::{Arc, Weak};

use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi::Status;
use tokio::sync::Notify;

/// Called with no arguments when a queue has work and JS had taken everything before.
pub(crate) type WakeCallback = ThreadsafeFunction<(), (), (), Status, false, true>;

/// The wake-up side of one queue.
pub(crate) struct JsWake {
    scheduled: AtomicBool,
    notify: Arc<Notify>,
}

impl JsWake {
    /// Starts the notifier task, which calls `callback` and ends when the `JsWake` is dropped.
    pub(crate) fn new(callback: WakeCallback) -> Arc<JsWake> {
        let notify = Arc::new(Notify::new());
        let wake = Arc::new(JsWake {
            scheduled: AtomicBool::new(false),
            notify: notify.clone(),
        });
        napi::bindgen_prelude::spawn(notifier(Arc::downgrade(&wake), notify, callback));
        wake
    }

    /// Work was queued: wake JS unless a wake-up is already on its way.
    pub(crate) fn schedule(&self) {
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

async fn notifier(wake: Weak<JsWake>, notify: Arc<Notify>, callback: WakeCallback) {
    loop {
        notify.notified().await;
        // Let the connection tasks that are ready now queue their work first.
        tokio::task::yield_now().await;
        if wake.strong_count() == 0 {
            return;
        }
        callback.call((), ThreadsafeFunctionCallMode::NonBlocking);
    }
}

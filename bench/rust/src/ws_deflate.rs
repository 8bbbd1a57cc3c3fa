//! `ws-load --deflate`: the same echo load, but over hypersock-core's client with
//! permessage-deflate negotiated (tungstenite has no compression). Every message is compressed
//! by this client (threshold 0), so the server inflates every one.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bytes::Bytes;
use hypersock_core::client::{dial_websocket, DialOptions};
use hypersock_core::ws::{self, DeflateOptions, Role, WsEvents, WsHandle, WsMessage};
use tokio::time::{sleep_until, timeout, Instant};

use super::{Error, Options};

struct Echoes {
    handles: Vec<OnceLock<WsHandle>>,
    text: Option<String>,
    binary: Bytes,
    size: usize,
    running: AtomicBool,
    received: AtomicU64,
    bad: AtomicU64,
}

impl Echoes {
    fn send(&self, id: u64) {
        if let Some(h) = self.handles.get(id as usize).and_then(OnceLock::get) {
            let _ = match &self.text {
                Some(t) => h.send_text(t.clone()),
                None => h.send_binary(self.binary.clone()),
            };
        }
    }
}

impl WsEvents for Echoes {
    fn on_message(&self, id: u64, msg: WsMessage) {
        let len = match &msg {
            WsMessage::Text(t) => t.len(),
            WsMessage::Binary(b) => b.len(),
        };
        if len != self.size {
            self.bad.fetch_add(1, Ordering::Relaxed);
        }
        if self.running.load(Ordering::Relaxed) {
            self.received.fetch_add(1, Ordering::Relaxed);
            self.send(id);
        }
    }

    fn on_close(&self, _id: u64, _code: u16, _reason: String) {}
}

/// Connects everything with compression, runs the load until the deadline, returns
/// (echoes, elapsed seconds).
pub async fn run(opts: &Options) -> Result<(u64, f64), Error> {
    let dial = DialOptions {
        deflate: Some(DeflateOptions {
            threshold: 0,
            ..DeflateOptions::default()
        }),
        handshake_timeout: Some(opts.connect_timeout),
        ..DialOptions::default()
    };
    let echoes = Arc::new(Echoes {
        handles: (0..opts.connections).map(|_| OnceLock::new()).collect(),
        text: (!opts.binary).then(|| "x".repeat(opts.size)),
        binary: Bytes::from(vec![0xa5u8; opts.size]),
        size: opts.size,
        running: AtomicBool::new(false),
        received: AtomicU64::new(0),
        bad: AtomicU64::new(0),
    });
    let attempts = (0..opts.connections).map(|_| dial_websocket(&opts.url, &dial));
    for (id, dialed) in futures_util::future::join_all(attempts)
        .await
        .into_iter()
        .enumerate()
    {
        let dialed = dialed.map_err(|e| format!("cannot connect to {}: {e}", opts.url))?;
        if dialed.deflate.is_none() {
            return Err("the server did not accept permessage-deflate".into());
        }
        let (handle, driver) = ws::channel(id as u64, &dial.limits);
        let _ = echoes.handles[id].set(handle);
        let events: Arc<dyn WsEvents> = echoes.clone();
        tokio::spawn(ws::run(
            dialed.stream,
            dialed.leftover,
            Role::Client,
            driver,
            events,
            dial.limits.clone(),
            dialed.deflate,
        ));
    }
    echoes.running.store(true, Ordering::Relaxed);
    let start = Instant::now();
    for id in 0..opts.connections {
        for _ in 0..opts.pipeline {
            echoes.send(id as u64);
        }
    }
    sleep_until(start + opts.duration).await;
    echoes.running.store(false, Ordering::Relaxed);
    let received = echoes.received.load(Ordering::Relaxed);
    if echoes.bad.load(Ordering::Relaxed) > 0 {
        return Err(format!("echoes of the wrong size, expected {}", opts.size).into());
    }
    for h in echoes.handles.iter().filter_map(OnceLock::get) {
        let _ = h.close(1000, String::new());
    }
    let _ = timeout(Duration::from_secs(2), async {
        while echoes
            .handles
            .iter()
            .filter_map(OnceLock::get)
            .any(|h| !h.is_closing())
        {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    Ok((received, opts.duration.as_secs_f64()))
}

/// `ws-load --idle`: opens the connections, prints `READY <n>`, holds them for the duration.
pub async fn idle(opts: &Options) -> Result<(u64, f64), Error> {
    let sockets = super::connect_all(opts).await?;
    println!("READY {}", sockets.len());
    tokio::time::sleep(opts.duration).await;
    drop(sockets);
    Ok((0, opts.duration.as_secs_f64()))
}

//! Accepting connections: hyper's connection builders and the accept loop, with its limits and
//! its graceful stop.

use std::sync::Arc;
use std::time::Duration;

use hyper_util::rt::TokioTimer;
use hyper_util::server::conn::auto;
use tokio::sync::{watch, OwnedSemaphorePermit, Semaphore};
use tokio::task::{AbortHandle, JoinSet};

use crate::ws::{self, WsHandle};

use super::*;

/// The connection builders of a server: HTTP/1.1 with HTTP/2 detected by its preface, or one of
/// them alone (chosen by `protocols`, or by ALPN on a TLS connection).
pub(super) struct ConnBuilder {
    pub(super) auto: auto::Builder<io::StreamExec>,
    pub(super) http1: hyper::server::conn::http1::Builder,
    pub(super) http2: hyper::server::conn::http2::Builder<io::StreamExec>,
    pub(super) protocols: Protocols,
}

/// hyper's default limit of header fields in a request.
pub(super) const HYPER_MAX_HEADERS: usize = 100;

/// `websocket`: advertise `SETTINGS_ENABLE_CONNECT_PROTOCOL` on HTTP/2, so that clients may open
/// WebSockets as extended CONNECT streams (RFC 8441).
pub(super) fn connection_builder(opts: &ServerOptions, websocket: bool) -> ConnBuilder {
    // 0 turns the limit off (hyper would take it as "at once").
    let head_timeout = (!opts.header_read_timeout.is_zero()).then_some(opts.header_read_timeout);
    let mut http2 = hyper::server::conn::http2::Builder::new(io::StreamExec);
    http2
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(opts.max_header_size).unwrap_or(u32::MAX))
        .max_concurrent_streams(opts.max_concurrent_streams.max(1))
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    if websocket {
        http2.enable_connect_protocol();
    }
    let mut http1 = hyper::server::conn::http1::Builder::new();
    http1
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .max_buf_size(opts.max_header_size.max(8192))
        .keep_alive(true);
    let mut auto = auto::Builder::new(io::StreamExec);
    auto.http1()
        .timer(TokioTimer::new())
        .header_read_timeout(head_timeout)
        .max_buf_size(opts.max_header_size.max(8192))
        .keep_alive(true);
    // hyper parses into a header array on the stack unless a limit is set, which makes it
    // allocate one per request: set only a limit other than hyper's own (100).
    if opts.max_headers != HYPER_MAX_HEADERS {
        http1.max_headers(opts.max_headers);
        auto.http1().max_headers(opts.max_headers);
    }
    auto.http2()
        .timer(TokioTimer::new())
        .max_header_list_size(u32::try_from(opts.max_header_size).unwrap_or(u32::MAX))
        .max_concurrent_streams(opts.max_concurrent_streams.max(1))
        .keep_alive_interval(Some(Duration::from_secs(30)))
        .keep_alive_timeout(Duration::from_secs(20));
    if websocket {
        auto.http2().enable_connect_protocol();
    }
    ConnBuilder {
        auto,
        http1,
        http2,
        protocols: opts.protocols,
    }
}

pub(super) async fn accept_loop(
    listener: Listener,
    ctx: Arc<Ctx>,
    mut shutdown: watch::Receiver<Option<Duration>>,
) {
    let mut conns = JoinSet::new();
    let builder = Arc::new(connection_builder(&ctx.opts, ctx.ws.is_some()));
    let slots = ctx
        .opts
        .max_connections
        .map(|n| Arc::new(Semaphore::new(n.max(1))));
    let deadline = loop {
        let permit: Option<OwnedSemaphorePermit> = match &slots {
            Some(slots) => tokio::select! {
                p = slots.clone().acquire_owned() => p.ok(),
                changed = shutdown.changed() => break stop_deadline(&shutdown, changed),
            },
            None => None,
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (io, peer, fd) = match accepted {
                    Ok(accepted) => accepted,
                    Err(_) => {
                        // Out of descriptors or a connection reset before accept: back off a bit.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                conns.spawn(serve_connection(ctx.clone(), builder.clone(), io, peer, fd, shutdown.clone(), permit));
            }
            Some(_) = conns.join_next(), if !conns.is_empty() => {}
            changed = shutdown.changed() => break stop_deadline(&shutdown, changed),
        }
    };
    drop(listener);
    let sockets: Vec<(WsHandle, AbortHandle)> = lock(&ctx.sockets).values().cloned().collect();
    for (handle, _) in &sockets {
        let _ = handle.close(ws::CLOSE_GOING_AWAY, "server shutting down".into());
    }
    let drain = async {
        while conns.join_next().await.is_some() {}
        while !lock(&ctx.sockets).is_empty() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    };
    if tokio::time::timeout(deadline, drain).await.is_err() {
        conns.abort_all();
        let rest: Vec<(WsHandle, AbortHandle)> =
            lock(&ctx.sockets).drain().map(|(_, v)| v).collect();
        for (_, abort) in rest {
            abort.abort();
        }
    }
}

pub(super) fn stop_deadline(
    shutdown: &watch::Receiver<Option<Duration>>,
    changed: std::result::Result<(), watch::error::RecvError>,
) -> Duration {
    match changed {
        Ok(()) => (*shutdown.borrow()).unwrap_or_default(),
        Err(_) => Duration::ZERO,
    }
}

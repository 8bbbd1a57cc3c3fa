//! Driving one connection: TLS and ALPN, HTTP/1.1 or HTTP/2, the first-request and idle timers,
//! and the counters.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::Duration;

use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::sync::{watch, OwnedSemaphorePermit};

use super::*;

/// Serves HTTP on an established (plain or TLS) stream.
#[allow(clippy::too_many_arguments)]
pub(super) async fn serve_io<I: io::Io>(
    ctx: &Arc<Ctx>,
    builder: &ConnBuilder,
    io: I,
    peer: Option<SocketAddr>,
    tls: Option<Arc<ConnTls>>,
    sniffed: Option<Protocols>,
    activity: &Arc<Activity>,
    stop: &mut watch::Receiver<Option<Duration>>,
) {
    let alpn: Option<&[u8]> = match tls.as_ref().and_then(|t| t.info.alpn_protocol.as_deref()) {
        Some("h2") => Some(b"h2"),
        Some("http/1.1") => Some(b"http/1.1"),
        _ => None,
    };
    // What every request of the connection needs, shared: one reference count per request.
    let conn = Arc::new(ConnShared {
        ctx: ctx.clone(),
        activity: activity.clone(),
        tls,
        peer,
    });
    let svc = service_fn(move |req: hyper::Request<hyper::body::Incoming>| Served {
        h2: req.version() == hyper::Version::HTTP_2,
        inner: handle(conn.ctx.clone(), conn.peer, conn.tls.clone(), req),
        conn: conn.clone(),
        busy: false,
    });
    let io = TokioIo::new(io);
    // ALPN, when TLS negotiated it, decides; otherwise the configured protocols do.
    let protocols = match alpn {
        Some(b"h2") => Protocols::Http2,
        Some(b"http/1.1") => Protocols::Http1,
        _ => sniffed.unwrap_or(builder.protocols),
    };
    match protocols {
        Protocols::Both => {
            let conn = std::pin::pin!(builder.auto.serve_connection_with_upgrades(io, svc));
            drive(conn, |c| c.graceful_shutdown(), ctx, activity, stop).await;
        }
        Protocols::Http1 => {
            let conn = std::pin::pin!(builder.http1.serve_connection(io, svc).with_upgrades());
            drive(conn, |c| c.graceful_shutdown(), ctx, activity, stop).await;
        }
        Protocols::Http2 => {
            let conn = std::pin::pin!(builder.http2.serve_connection(io, svc));
            drive(conn, |c| c.graceful_shutdown(), ctx, activity, stop).await;
        }
    }
}

pin_project_lite::pin_project! {
    /// One request as hyper runs it: [`handle`]'s future, with the connection's bookkeeping
    /// around it. A struct rather than an async block: the block would keep the request in its
    /// own state beside the copy inside `handle`'s, and this future is the size of every HTTP/2
    /// stream's task and of every HTTP/1.1 connection's in-flight slot.
    struct Served<F> {
        #[pin]
        inner: F,
        conn: Arc<ConnShared>,
        h2: bool,
        // Counted in `activity.in_flight` (from the first poll to the end or the drop).
        busy: bool,
    }
    impl<F> PinnedDrop for Served<F> {
        fn drop(this: Pin<&mut Self>) {
            if this.busy {
                this.conn.activity.in_flight.fetch_sub(1, Relaxed);
            }
        }
    }
}

impl<F: std::future::Future<Output = HttpResponse>> std::future::Future for Served<F> {
    type Output = Result<HttpResponse, Infallible>;

    fn poll(
        self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Self::Output> {
        let me = self.project();
        if !*me.busy {
            *me.busy = true;
            me.conn.activity.in_flight.fetch_add(1, Relaxed);
            me.conn.activity.started.store(true, Relaxed);
        }
        let mut res = std::task::ready!(me.inner.poll(cx));
        if *me.h2 && me.conn.ctx.opts.send_timeout.is_some() {
            res.body_mut().watch(me.conn.activity.clone());
        }
        *me.busy = false;
        me.conn.activity.in_flight.fetch_sub(1, Relaxed);
        std::task::Poll::Ready(Ok(res))
    }
}

pub(super) struct ConnShared {
    pub(super) ctx: Arc<Ctx>,
    pub(super) activity: Arc<Activity>,
    pub(super) tls: Option<Arc<ConnTls>>,
    pub(super) peer: Option<SocketAddr>,
}

/// Runs a connection until it ends, shutting it down gracefully on server stop or when it has
/// been idle (no bytes, no request in flight) for the idle timeout.
///
/// A connection whose first request head has not arrived within the header-read timeout of its
/// accept is dropped, whatever the protocol: hyper's own timer covers HTTP/1.1 only, and only
/// once it owns the socket, so a silent socket, or one that sends part of the HTTP/2 preface,
/// would otherwise be kept until the idle timeout (or forever without one).
pub(super) async fn drive<C: std::future::Future>(
    mut conn: std::pin::Pin<&mut C>,
    shutdown: fn(std::pin::Pin<&mut C>),
    ctx: &Ctx,
    activity: &Activity,
    stop: &mut watch::Receiver<Option<Duration>>,
) {
    let idle = ctx.opts.idle_timeout;
    let head_by = (!ctx.opts.header_read_timeout.is_zero())
        .then(|| activity.accepted + ctx.opts.header_read_timeout);
    // The timer ticks at a quarter of the idle timeout; a connection is closed once no byte
    // moved (and no request was in flight) for the whole timeout, give or take a tick.
    let tick = idle.map(|d| (d / 4).max(Duration::from_millis(1)));
    let mut seen = activity.ops.load(Relaxed);
    let mut quiet_from = tokio::time::Instant::now();
    // A client that stops reading a response: writes blocked with no progress for the whole
    // send timeout (checked every quarter of it) closes the connection.
    let send_timeout = ctx.opts.send_timeout;
    let send_tick = send_timeout.map(|d| (d / 4).max(Duration::from_millis(1)));
    // (writes done, bytes the socket still held, since when), while writes are blocked.
    let mut stuck: Option<(u64, Option<u64>, tokio::time::Instant)> = None;
    loop {
        let mut wait = match (idle, tick) {
            (Some(idle), Some(tick)) => idle
                .saturating_sub(quiet_from.elapsed())
                .min(tick)
                .max(Duration::from_millis(1)),
            _ => Duration::from_secs(3600),
        };
        if let Some(send_tick) = send_tick {
            wait = wait.min(send_tick);
        }
        let waiting_for_head = head_by.filter(|_| !activity.started.load(Relaxed));
        if let Some(by) = waiting_for_head {
            let left = by.saturating_duration_since(tokio::time::Instant::now());
            if left.is_zero() {
                ctx.stats.timeouts.fetch_add(1, Relaxed);
                return;
            }
            wait = wait.min(left);
        }
        tokio::select! {
            _ = conn.as_mut() => return,
            _ = stop.changed() => {
                // Finish the in-flight requests, then close instead of keeping alive; streams a
                // client keeps stalled are still reset after the send timeout meanwhile.
                shutdown(conn.as_mut());
                let (Some(limit), Some(tick)) = (send_timeout, send_tick) else {
                    conn.as_mut().await;
                    return;
                };
                loop {
                    tokio::select! {
                        _ = conn.as_mut() => return,
                        _ = tokio::time::sleep(tick) => {
                            if !reset_stalled(ctx, activity, limit) {
                                return;
                            }
                        }
                    }
                }
            }
            _ = tokio::time::sleep(wait) => {
                if let Some(limit) = send_timeout {
                    if !reset_stalled(ctx, activity, limit) {
                        return;
                    }
                    if !activity.write_blocked.load(Relaxed) {
                        stuck = None;
                    } else {
                        // Progress: a write went through, or the socket's queue shrank (the
                        // client reads, just slower than the queue takes to drain a third).
                        let written = activity.written.load(Relaxed);
                        let unsent = io::unsent_bytes(activity.fd);
                        match stuck {
                            Some((at, held, since))
                                if at == written && !matches!((unsent, held), (Some(u), Some(h)) if u < h) =>
                            {
                                if since.elapsed() >= limit {
                                    ctx.stats.timeouts.fetch_add(1, Relaxed);
                                    return;
                                }
                            }
                            _ => stuck = Some((written, unsent, tokio::time::Instant::now())),
                        }
                    }
                }
                let Some(idle) = idle else { continue };
                let ops = activity.ops.load(Relaxed);
                // A response waiting for the client to take it is not idle: it is the send
                // timeout's (above).
                if ops != seen || activity.in_flight.load(Relaxed) > 0 || activity.has_waiting() {
                    seen = ops;
                    quiet_from = tokio::time::Instant::now();
                    continue;
                }
                if quiet_from.elapsed() >= idle {
                    ctx.stats.timeouts.fetch_add(1, Relaxed);
                    shutdown(conn.as_mut());
                    conn.as_mut().await;
                    return;
                }
            }
        }
    }
}

/// Resets the HTTP/2 streams a client stalls by granting no flow-control window (which blocks
/// no write, and pings may keep the connection busy meanwhile), counting each as a timeout.
/// False when one cannot be reset alone, and the connection must close.
fn reset_stalled(ctx: &Ctx, activity: &Activity, limit: Duration) -> bool {
    match activity.cancel_stalled(limit, activity.write_blocked.load(Relaxed)) {
        Ok(n) => {
            ctx.stats.timeouts.fetch_add(n, Relaxed);
            true
        }
        Err(()) => {
            ctx.stats.timeouts.fetch_add(1, Relaxed);
            false
        }
    }
}

/// Tells HTTP/2 by prior knowledge from HTTP/1.1 on a clear-text connection
/// ([`Counted::sniff_h2`]), within the time a request head may take (or the idle timeout when
/// that is off). `None`: the time ran out (counted as a timeout) or the server is stopping.
async fn sniff(
    ctx: &Ctx,
    io: &mut Counted,
    activity: &Activity,
    stop: &mut watch::Receiver<Option<Duration>>,
) -> Option<Protocols> {
    let limit = [
        ctx.opts.header_read_timeout,
        ctx.opts.idle_timeout.unwrap_or_default(),
    ]
    .into_iter()
    .filter(|d| !d.is_zero())
    .min();
    let deadline = limit.map(|d| activity.accepted + d);
    let timer = async {
        match deadline {
            Some(at) => tokio::time::sleep_until(at).await,
            None => std::future::pending().await,
        }
    };
    tokio::select! {
        h2 = io.sniff_h2() => Some(if h2 { Protocols::Http2 } else { Protocols::Http1 }),
        _ = timer => {
            ctx.stats.timeouts.fetch_add(1, Relaxed);
            None
        }
        _ = stop.changed() => None,
    }
}

pub(super) async fn serve_connection(
    ctx: Arc<Ctx>,
    builder: Arc<ConnBuilder>,
    io: io::BoxIo,
    peer: Option<SocketAddr>,
    fd: Option<i32>,
    mut stop: watch::Receiver<Option<Duration>>,
    _permit: Option<OwnedSemaphorePermit>,
) {
    let stats = ctx.stats.clone();
    stats.connections_total.fetch_add(1, Relaxed);
    let activity = Arc::new(Activity::new(fd));
    let io = Counted::new(io, stats.clone(), activity.clone());
    match &ctx.tls {
        None => {
            let mut io = io;
            // Serving both protocols in clear text, the first bytes tell which one the client
            // speaks. Told here rather than by hyper-util's `auto` connection, the connection is
            // a plain HTTP/1.1 or HTTP/2 one, and an upgraded WebSocket runs on this stream
            // itself instead of hyper's boxed one.
            let sniffed = if builder.protocols == Protocols::Both {
                match sniff(&ctx, &mut io, &activity, &mut stop).await {
                    Some(p) => Some(p),
                    None => return,
                }
            } else {
                None
            };
            serve_io(
                &ctx, &builder, io, peer, None, sniffed, &activity, &mut stop,
            )
            .await
        }
        Some(config) => {
            let config = config.read().unwrap_or_else(|e| e.into_inner()).clone();
            let handshake = tokio_rustls::TlsAcceptor::from(config).accept(io);
            let limit = ctx.opts.header_read_timeout;
            let handshake = async {
                if limit.is_zero() {
                    Ok(handshake.await)
                } else {
                    tokio::time::timeout(limit, handshake).await
                }
            };
            match handshake.await {
                Ok(Ok(stream)) => {
                    let conn = stream.get_ref().1;
                    let tls = Arc::new(ConnTls::new(
                        crate::tls::TlsInfo::from_connection(conn),
                        conn.server_name().map(str::to_owned),
                    ));
                    serve_io(
                        &ctx,
                        &builder,
                        stream,
                        peer,
                        Some(tls),
                        None,
                        &activity,
                        &mut stop,
                    )
                    .await;
                }
                Ok(Err(_)) => {
                    stats.tls_failures.fetch_add(1, Relaxed);
                }
                Err(_) => {
                    stats.tls_failures.fetch_add(1, Relaxed);
                    stats.timeouts.fetch_add(1, Relaxed);
                }
            }
        }
    }
}

/// Raises a gauge for as long as it lives, so that a dropped request future (client gone, HTTP/2
/// stream reset) still lowers it.
pub(super) struct Gauge<'a>(&'a AtomicU64);

impl<'a> Gauge<'a> {
    pub(super) fn up(counter: &'a AtomicU64) -> Self {
        counter.fetch_add(1, Relaxed);
        Gauge(counter)
    }
}

impl Drop for Gauge<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn output_size<A, B, C, D, R>(_: fn(A, B, C, D) -> R) -> usize {
        std::mem::size_of::<R>()
    }

    #[test]
    fn request_future_stays_small() {
        // hyper keeps this future in a box for every HTTP/1.1 connection's life, and it is most of
        // every HTTP/2 stream's task: 2,552 bytes when the async fns kept their arguments twice.
        let handle = output_size(handle as fn(_, _, _, _) -> _);
        assert!(handle <= 2048, "handle's future is {handle} bytes");
        let served = std::mem::size_of::<Served<std::future::Ready<HttpResponse>>>();
        let inner = std::mem::size_of::<std::future::Ready<HttpResponse>>();
        assert!(served <= inner + 24, "Served adds {} bytes", served - inner);
    }

    #[test]
    fn stream_task_holds_its_future_once() {
        // The async block around `select!` it replaced held the stream's future twice.
        type Big = std::future::Ready<[u8; 1024]>;
        let task = std::mem::size_of::<super::super::io::StreamTask<Big>>();
        assert!(
            task <= 1024 + 64,
            "a stream's task is {task} bytes for a 1,024-byte future"
        );
    }
}

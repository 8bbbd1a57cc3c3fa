//! The HTTP server: HTTP/1.1 and HTTP/2 (h2c by prior knowledge) on one port, with WebSocket
//! upgrade and generic connection hijack.
//!
//! Each request goes to an [`HttpHandler`] together with a [`Responder`]; the handler answers
//! whenever it likes, from any thread. A dropped responder answers 500. Small bodies arrive whole
//! and larger ones as a [`BodyStream`]; responses are whole or streamed through a [`BodySender`].
//! Limits (header size and count, body size, idle and header timeouts, connections, concurrent
//! handlers) are enforced here, before any JS runs.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use http::header::HeaderValue;
use tokio::sync::{watch, Semaphore};
use tokio::task::AbortHandle;

use crate::error::{Error, Result};
use crate::ws::WsHandle;

mod accept;
mod body;
mod connection;
pub mod files;
mod hijack;
mod io;
mod respond;
pub(crate) mod routes;
mod stats;
mod types;
mod upgrade;

pub use body::{BodySender, BodyStream, RequestBody, ResBody, INLINE_BODY_LIMIT};
pub use hijack::RawConnection;
pub use hyper::upgrade::OnUpgrade;
pub use io::{BoundAddr, ListenTarget};
pub use routes::{RouteAction, RouteMatch, RouteSpec, Routes, StaticResponse};
pub use stats::StatsSnapshot;
pub use upgrade::{is_extended_connect, wants_websocket, Upgrade, UpgradeAccept, UpgradeReject};

pub use types::*;

use accept::*;
use connection::*;
use io::{Activity, Counted, Listener};
pub(crate) use respond::*;
use stats::Stats;

pub(crate) struct Ctx {
    pub(crate) http: Arc<dyn HttpHandler>,
    pub(crate) ws: Option<Arc<dyn WsHandler>>,
    pub(crate) opts: ServerOptions,
    pub(crate) server_name: Option<HeaderValue>,
    pub(crate) next_ws_id: AtomicU64,
    pub(crate) sockets: Mutex<HashMap<u64, (WsHandle, AbortHandle)>>,
    /// `opts.ws.limits`, shared by every WebSocket connection.
    pub(crate) ws_limits: Arc<crate::ws::WsLimits>,
    pub(crate) stats: Arc<Stats>,
    handler_slots: Option<Arc<Semaphore>>,
    tls: Option<std::sync::RwLock<Arc<rustls::ServerConfig>>>,
    routes: std::sync::RwLock<Arc<Routes>>,
    queued: AtomicUsize,
}

impl Ctx {
    /// The route table now.
    pub(crate) fn routes(&self) -> Arc<Routes> {
        self.routes
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }
}

/// A running server. Dropping it does not stop it; call [`Server::stop`].
pub struct Server {
    local_addr: BoundAddr,
    ctx: Arc<Ctx>,
    shutdown: watch::Sender<Option<Duration>>,
    task: Mutex<Option<tokio::task::JoinHandle<()>>>,
    /// The connections taken over after a 101 ([`Server::raw_connection`]), open or not.
    hijacked: tokio_util::task::TaskTracker,
    /// Ends the taken-over connections when the server stops.
    hijack_stop: tokio_util::sync::CancellationToken,
}

impl Server {
    /// Binds the listening socket and starts accepting connections on the current runtime.
    pub async fn bind(
        opts: ServerOptions,
        http: Arc<dyn HttpHandler>,
        ws: Option<Arc<dyn WsHandler>>,
    ) -> Result<Server> {
        let listener = Listener::bind(&opts.listen)
            .await
            .map_err(|source| Error::Listen {
                addr: match &opts.listen {
                    ListenTarget::Tcp { addr, .. } => addr.clone(),
                    #[cfg(unix)]
                    ListenTarget::Unix(path) => path.display().to_string(),
                },
                source,
            })?;
        let local_addr = listener.local_addr()?;
        let server_name = match &opts.server_name {
            Some(name) => Some(
                HeaderValue::from_str(name)
                    .map_err(|_| Error::InvalidArgument("invalid server name".into()))?,
            ),
            None => None,
        };
        let ctx = Arc::new(Ctx {
            http,
            ws,
            server_name,
            next_ws_id: AtomicU64::new(1),
            sockets: Mutex::new(HashMap::new()),
            ws_limits: Arc::new(opts.ws.limits.clone()),
            stats: Arc::new(Stats::default()),
            handler_slots: opts
                .max_concurrent_requests
                .map(|n| Arc::new(Semaphore::new(n.max(1)))),
            queued: AtomicUsize::new(0),
            tls: opts.tls.clone().map(std::sync::RwLock::new),
            routes: std::sync::RwLock::new(opts.routes.clone()),
            opts,
        });
        let (shutdown, rx) = watch::channel(None);
        let task = tokio::spawn(accept_loop(listener, ctx.clone(), rx));
        Ok(Server {
            local_addr,
            ctx,
            shutdown,
            task: Mutex::new(Some(task)),
            hijacked: tokio_util::task::TaskTracker::new(),
            hijack_stop: tokio_util::sync::CancellationToken::new(),
        })
    }

    /// The address the server listens on.
    pub fn local_addr(&self) -> &BoundAddr {
        &self.local_addr
    }

    /// Number of open WebSocket connections.
    pub fn websocket_count(&self) -> usize {
        lock(&self.ctx.sockets).len()
    }

    /// The hub of the server's WebSocket connections.
    pub fn hub(&self) -> &crate::hub::Hub {
        &self.ctx.opts.hub
    }

    /// Replaces the TLS configuration (e.g. renewed certificates) for new connections; open
    /// ones keep theirs. Fails when the server was started without TLS.
    pub fn reload_tls(&self, config: Arc<rustls::ServerConfig>) -> Result<()> {
        let Some(tls) = &self.ctx.tls else {
            return Err(Error::InvalidArgument(
                "the server was started without TLS".into(),
            ));
        };
        *tls.write().unwrap_or_else(|e| e.into_inner()) = config;
        Ok(())
    }

    /// Replaces the route table. Requests already matched keep the route they matched; open
    /// connections stay open.
    pub fn set_routes(&self, routes: Routes) {
        *self.ctx.routes.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(routes);
    }

    /// The server's counters now.
    pub fn stats(&self) -> StatsSnapshot {
        self.ctx.stats.snapshot(self.websocket_count() as u64)
    }

    /// The raw connection of a request answered with 101 (`on_upgrade` is the request's
    /// [`Request::upgrade`]). The server counts it until it is destroyed or dropped, and its
    /// `stop` ends it: at once without grace, else when `deadline` runs out.
    pub fn raw_connection(&self, on_upgrade: hyper::upgrade::OnUpgrade) -> RawConnection {
        RawConnection::tracked(
            on_upgrade,
            self.hijack_stop.clone(),
            Some(self.hijacked.token()),
        )
    }

    /// Stops accepting, closes idle connections, lets in-flight requests finish, sends close 1001
    /// to WebSockets, gives connections taken over after a 101 until `deadline` to end by
    /// themselves, and forces whatever remains after `deadline`. Idempotent.
    pub async fn stop(&self, deadline: Duration) {
        let started = tokio::time::Instant::now();
        let _ = self.shutdown.send(Some(deadline));
        let task = lock(&self.task).take();
        if let Some(task) = task {
            let _ = task.await;
        }
        self.hijacked.close();
        let left = deadline.saturating_sub(started.elapsed());
        let _ = tokio::time::timeout(left, self.hijacked.wait()).await;
        self.hijack_stop.cancel();
        self.ctx.opts.hub.shutdown();
    }
}

pub(crate) fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

//! Raw TCP/TLS connections (`connect` in the TS layer): the binding of
//! `hypersock_core::net::socket`.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use hypersock_core::net::socket::{self, Connected, SocketEvents, SocketHandle, SocketOptions};
use hypersock_core::Error as CoreError;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use crate::client::{tls_options, BindingTlsOptions};
use crate::error::{Fail, JsResult, Outcome};
use crate::lent;

/// Kinds of socket events: the `kind` of `start`'s callback.
#[napi]
pub enum SocketEventKind {
    /// Bytes arrived (a Buffer).
    Data = 0,
    /// The peer ended its side.
    End = 1,
    /// Reading or writing failed (an Error); `Close` follows.
    Error = 2,
    /// The connection is gone.
    Close = 3,
}

type SocketEventArgs = FnArgs<(u32, Option<Either<Buffer, Fail>>)>;
/// Not weak: like a `net.Socket`, an open connection keeps the process alive until it closes.
type SocketEventCallback =
    ThreadsafeFunction<SocketEventArgs, (), SocketEventArgs, Status, false, false>;

/// Options of `socketConnect`, validated by the TS layer.
#[napi(object)]
pub struct BindingSocketOptions {
    /// TLS from the start, with these options.
    pub tls: Option<BindingTlsOptions>,
    /// Use TLS (with `tls`, or the defaults when it is absent).
    pub secure: bool,
    /// ALPN protocols offered.
    pub alpn: Option<Vec<String>>,
    /// Time the connect (and TLS handshake) may take.
    pub timeout_ms: Option<u32>,
}

/// A raw connection. Call `start` to begin receiving.
#[napi]
pub struct BindingSocket {
    pending: Option<Connected>,
    handle: Option<SocketHandle>,
    remote: Option<std::net::SocketAddr>,
    local: Option<std::net::SocketAddr>,
    tls: Arc<Mutex<Option<String>>>,
}

/// Opens a connection to `host:port`.
#[napi(ts_return_type = "Promise<BindingSocket>")]
pub fn socket_connect<'env>(
    env: &'env Env,
    host: String,
    port: u32,
    options: BindingSocketOptions,
) -> Result<PromiseRaw<'env, Outcome<BindingSocket>>> {
    env.spawn_future(async move { Ok(open(host, port, options).await.into()) })
}

async fn open(host: String, port: u32, options: BindingSocketOptions) -> JsResult<BindingSocket> {
    let port = u16::try_from(port)
        .ok()
        .filter(|p| *p > 0)
        .ok_or_else(|| CoreError::InvalidArgument(format!("invalid port {port}")))?;
    let tls = if options.secure {
        Some(tls_options(options.tls)?)
    } else {
        None
    };
    let opts = SocketOptions {
        tls,
        alpn: options.alpn.unwrap_or_default(),
        timeout: options
            .timeout_ms
            .filter(|t| *t > 0)
            .map(|t| Duration::from_millis(u64::from(t))),
    };
    let conn = socket::connect(&host, port, &opts).await?;
    Ok(BindingSocket {
        remote: conn.peer,
        local: conn.local,
        tls: Arc::new(Mutex::new(
            conn.tls.as_ref().map(|t| t.to_json().to_string()),
        )),
        pending: Some(conn),
        handle: None,
    })
}

struct JsSocketEvents(SocketEventCallback);

impl JsSocketEvents {
    fn emit(&self, kind: SocketEventKind, data: Option<Either<Buffer, Fail>>) {
        let args: SocketEventArgs = (kind as u32, data).into();
        self.0.call(args, ThreadsafeFunctionCallMode::NonBlocking);
    }
}

impl SocketEvents for JsSocketEvents {
    fn on_data(&self, data: Bytes) {
        self.emit(
            SocketEventKind::Data,
            Some(Either::A(Buffer::from(Vec::from(data)))),
        );
    }
    fn on_end(&self) {
        self.emit(SocketEventKind::End, None);
    }
    fn on_error(&self, error: CoreError) {
        self.emit(SocketEventKind::Error, Some(Either::B(Fail::from(error))));
    }
    fn on_close(&self) {
        self.emit(SocketEventKind::Close, None);
    }
}

impl BindingSocket {
    fn handle(&self, env: &Env) -> Result<SocketHandle> {
        self.handle
            .clone()
            .ok_or_else(|| Fail::invalid_state("the socket is not started").throw(env))
    }
}

#[napi]
impl BindingSocket {
    /// Starts receiving: events go to `on_event` from now on.
    #[napi]
    pub fn start(
        &mut self,
        env: &Env,
        #[napi(ts_arg_type = "(kind: number, data: Buffer | Error | null) => void")]
        on_event: SocketEventCallback,
    ) -> Result<()> {
        let Some(conn) = self.pending.take() else {
            return Err(Fail::invalid_state("already started").throw(env));
        };
        let events = Arc::new(JsSocketEvents(on_event));
        let (handle, task) = socket::drive_socket(conn, events);
        napi::bindgen_prelude::spawn(task);
        self.handle = Some(handle);
        Ok(())
    }

    /// Queues `data`; resolves once it is written to the socket.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn write<'env>(
        &self,
        env: &'env Env,
        data: &[u8],
    ) -> Result<PromiseRaw<'env, Outcome<()>>> {
        let handle = self.handle(env)?;
        let data = lent::to_bytes(data);
        env.spawn_future(async move { Ok(handle.write(data).await.into()) })
    }

    /// Ends this side once what is queued is written; reading goes on.
    #[napi(ts_return_type = "Promise<void>")]
    pub fn end<'env>(&self, env: &'env Env) -> Result<PromiseRaw<'env, Outcome<()>>> {
        let handle = self.handle(env)?;
        env.spawn_future(async move { Ok(handle.end().await.into()) })
    }

    /// Upgrades the plain connection to TLS in place; resolves with the handshake (JSON).
    #[napi(ts_return_type = "Promise<string>")]
    pub fn start_tls<'env>(
        &self,
        env: &'env Env,
        tls: Option<BindingTlsOptions>,
        alpn: Option<Vec<String>>,
        timeout_ms: Option<u32>,
    ) -> Result<PromiseRaw<'env, Outcome<String>>> {
        let handle = self.handle(env)?;
        let opts = tls_options(tls).map_err(|f| f.throw(env))?;
        let slot = self.tls.clone();
        env.spawn_future(async move {
            let timeout = timeout_ms
                .filter(|t| *t > 0)
                .map(|t| Duration::from_millis(u64::from(t)));
            let r = handle
                .start_tls(opts, alpn.unwrap_or_default(), timeout)
                .await;
            Ok(r.map(|info| {
                let json = info.to_json().to_string();
                *slot.lock().unwrap_or_else(|e| e.into_inner()) = Some(json.clone());
                json
            })
            .into())
        })
    }

    /// Stops (false) or resumes (true) reading.
    #[napi]
    pub fn set_reading(&self, on: bool) {
        if let Some(h) = &self.handle {
            h.set_reading(on);
        }
    }

    /// Drops the connection at once.
    #[napi]
    pub fn destroy(&mut self) {
        self.pending = None;
        if let Some(h) = &self.handle {
            h.destroy();
        }
    }

    /// The TLS handshake (JSON), once TLS is on.
    #[napi(getter)]
    pub fn tls(&self) -> Option<String> {
        self.tls.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The peer's address and port.
    #[napi(getter)]
    pub fn remote_address(&self) -> String {
        self.remote.map(|a| a.ip().to_string()).unwrap_or_default()
    }

    /// The peer's port.
    #[napi(getter)]
    pub fn remote_port(&self) -> u32 {
        self.remote.map_or(0, |a| u32::from(a.port()))
    }

    /// This side's address.
    #[napi(getter)]
    pub fn local_address(&self) -> String {
        self.local.map(|a| a.ip().to_string()).unwrap_or_default()
    }

    /// This side's port.
    #[napi(getter)]
    pub fn local_port(&self) -> u32 {
        self.local.map_or(0, |a| u32::from(a.port()))
    }
}

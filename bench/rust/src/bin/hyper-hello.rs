//! The pure-Rust ceiling of the HTTP hello-world benchmark: hyper 1 on a two-worker tokio
//! runtime, HTTP/1.1 with keep-alive, answering every request with `Hello, World!`.
//!
//! Usage: `hyper-hello [--port N]` (0, the default, picks a free port). Listens on 127.0.0.1 only,
//! prints `LISTENING <port>` on stdout once bound, and exits when its stdin reaches end of file
//! (so it never outlives the harness that spawned it with a piped stdin).

#[path = "../harness.rs"]
mod harness;
use harness::exit_on_stdin_eof;

use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};

use bytes::Bytes;
use http_body_util::BodyExt;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE};
use hyper::service::service_fn;
use hyper::{Request, Response};
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use tokio::net::TcpListener;

const BODY: &[u8] = b"Hello, World!";

type BoxError = Box<dyn std::error::Error + Send + Sync>;

fn main() -> Result<(), BoxError> {
    let port = parse_port(std::env::args().skip(1))?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    runtime.block_on(serve(port))
}

/// Reads `--port N` from the arguments; anything else is an error.
fn parse_port(mut args: impl Iterator<Item = String>) -> Result<u16, BoxError> {
    let mut port = 0;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                let value = args.next().ok_or("--port needs a value")?;
                port = value
                    .parse()
                    .map_err(|_| format!("invalid port {value:?}"))?;
            }
            other => {
                return Err(
                    format!("unknown argument {other:?}; usage: hyper-hello [--port N]").into(),
                )
            }
        }
    }
    Ok(port)
}

async fn serve(port: u16) -> Result<(), BoxError> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    println!("LISTENING {}", listener.local_addr()?.port());
    exit_on_stdin_eof();

    loop {
        let (stream, _) = match listener.accept().await {
            Ok(accepted) => accepted,
            // Running out of file descriptors and the like: keep serving the open connections.
            Err(_) => continue,
        };
        let _ = stream.set_nodelay(true);
        tokio::spawn(async move {
            // HTTP/1.1, and HTTP/2 by prior knowledge (for h2load), like hypersock's server.
            // Errors here are the client going away mid-request; nothing to report.
            let _ = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service_fn(hello))
                .await;
        });
    }
}

/// GET: the hello-world body. POST: echoes the (JSON) body back.
async fn hello(req: Request<Incoming>) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() == hyper::Method::POST {
        let body = req
            .into_body()
            .collect()
            .await
            .map(|b| b.to_bytes())
            .unwrap_or_default();
        let mut res = Response::new(Full::new(body));
        res.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        return Ok(res);
    }
    let mut res = Response::new(Full::new(Bytes::from_static(BODY)));
    res.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    Ok(res)
}

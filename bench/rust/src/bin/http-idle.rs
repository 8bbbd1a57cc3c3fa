//! Idle HTTP/1.1 keep-alive connections for the memory benchmarks.
//!
//! Usage: `http-idle --url http://127.0.0.1:PORT/ [--connections 10000] [--concurrency 256]
//! [--connect-timeout-secs 60] [--duration-secs 60]`
//!
//! Opens `--connections` connections, at most `--concurrency` at a time, sends one keep-alive
//! `GET` on each and reads its whole response (a `200` with a `Content-Length` body), then
//! prints `READY <n>` and holds them all open and silent for `--duration-secs`. The server then
//! has exactly as many idle keep-alive connections, each having served one request. It never
//! hangs: connecting is bounded by the connect timeout, the hold by the duration, and a watchdog
//! thread kills the process if both are overrun. Any failure exits non-zero with a message on
//! stderr.

#[path = "../harness.rs"]
mod harness;

use std::process::exit;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::timeout;

type Error = Box<dyn std::error::Error + Send + Sync>;

struct Options {
    addr: String,
    path: String,
    connections: usize,
    concurrency: usize,
    connect_timeout: Duration,
    duration: Duration,
}

const USAGE: &str = "usage: http-idle --url http://127.0.0.1:PORT/ [--connections N] \
                     [--concurrency N] [--connect-timeout-secs S] [--duration-secs S]";

/// Largest response head accepted.
const MAX_HEAD: usize = 16 << 10;

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, Error> {
    let mut url = None;
    let mut opts = Options {
        addr: String::new(),
        path: String::new(),
        connections: 10_000,
        concurrency: 256,
        connect_timeout: Duration::from_secs(60),
        duration: Duration::from_secs(60),
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--url" => url = Some(value()?),
            "--connections" => opts.connections = value()?.parse()?,
            "--concurrency" => opts.concurrency = value()?.parse::<usize>()?.max(1),
            "--connect-timeout-secs" => {
                opts.connect_timeout = Duration::from_secs(value()?.parse()?)
            }
            "--duration-secs" => opts.duration = Duration::from_secs(value()?.parse()?),
            other => return Err(format!("unknown option {other}\n{USAGE}").into()),
        }
    }
    let url = url.ok_or(USAGE)?;
    let rest = url
        .strip_prefix("http://")
        .ok_or("--url must be http://HOST:PORT/...")?;
    let (addr, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    opts.addr = addr.to_string();
    opts.path = if path.is_empty() {
        "/".into()
    } else {
        path.into()
    };
    Ok(opts)
}

/// Reads one whole response (head and `Content-Length` body) and checks its status.
async fn read_response(stream: &mut TcpStream) -> Result<(), Error> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if buf.len() > MAX_HEAD {
            return Err("response head too large".into());
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err("connection closed before the response".into());
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end])?;
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!("unexpected response: {}", head.lines().next().unwrap_or("")).into());
    }
    let length: usize = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("content-length")
                .then(|| value.trim().parse().ok())?
        })
        .ok_or("the response has no Content-Length")?;
    let mut have = buf.len() - head_end;
    while have < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err("connection closed inside the body".into());
        }
        have += n;
    }
    Ok(())
}

async fn open_one(addr: String, request: Arc<[u8]>) -> Result<TcpStream, Error> {
    let mut stream = TcpStream::connect(&addr).await?;
    stream.write_all(&request).await?;
    read_response(&mut stream).await?;
    Ok(stream)
}

async fn run(opts: Options) -> Result<(), Error> {
    let request: Arc<[u8]> = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nConnection: keep-alive\r\n\r\n",
        opts.path, opts.addr
    )
    .into_bytes()
    .into();
    let slots = Arc::new(Semaphore::new(opts.concurrency));
    let attempts: Vec<_> = (0..opts.connections)
        .map(|_| {
            let (addr, request, slots) = (opts.addr.clone(), request.clone(), slots.clone());
            tokio::spawn(async move {
                let _slot = slots.acquire_owned().await?;
                open_one(addr, request).await
            })
        })
        .collect();
    let mut streams = Vec::with_capacity(opts.connections);
    let all = async {
        for attempt in attempts {
            streams.push(attempt.await??);
        }
        Ok::<_, Error>(())
    };
    match timeout(opts.connect_timeout, all).await {
        Ok(result) => {
            result.map_err(|e| format!("cannot open a connection to {}: {e}", opts.addr))?
        }
        Err(_) => return Err(format!("opening timed out after {:?}", opts.connect_timeout).into()),
    }
    println!("READY {}", streams.len());
    tokio::time::sleep(opts.duration).await;
    drop(streams);
    Ok(())
}

fn main() {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(opts) => opts,
        Err(e) => {
            eprintln!("http-idle: {e}");
            exit(2);
        }
    };
    harness::start_watchdog(
        "http-idle",
        opts.connect_timeout + opts.duration + Duration::from_secs(10),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = runtime.block_on(run(opts)) {
        eprintln!("http-idle: {e}");
        exit(1);
    }
}

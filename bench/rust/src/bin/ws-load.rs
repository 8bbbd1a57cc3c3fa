//! WebSocket echo load generator for the benchmarks.
//!
//! Usage: `ws-load --url ws://127.0.0.1:PORT/ [--connections 100] [--size 32] [--duration-secs 5]
//! [--pipeline 16] [--binary] [--threads 2] [--connect-timeout-secs 5] [--connect-concurrency N]
//! [--sources 127.0.0.2,127.0.0.3]`
//!
//! Opens every connection first, then for `--duration-secs` keeps `--pipeline` messages of `--size`
//! bytes in flight on each, sending a new one for every echo received, then closes them politely
//! (draining the echoes still in flight) so the server is idle again. Prints one JSON line,
//! `{"messages":N,"seconds":S,"rate":R}`, counting only echoes received before the deadline.
//! `--room` measures a room chat instead of an echo: every connection's messages (text, tagged
//! with the connection's number) go to every connection, the next one is sent when the sender's
//! own copy comes back, and `messages` counts every delivery received before the deadline.
//! `--deflate` runs the same load with permessage-deflate (see `ws_deflate.rs`); `--idle` opens
//! the connections, prints `READY <n>` and holds them idle for `--duration-secs` (memory runs).
//! It never hangs: connecting is bounded by the connect timeout, the run by the duration, and a
//! watchdog thread kills the process if both are overrun. Any failure exits non-zero with a
//! message on stderr.

use std::process::exit;
use std::sync::Arc;
use std::time::Duration;

use futures_util::stream::{SplitSink, SplitStream};
use futures_util::{SinkExt, StreamExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;
use tokio::time::{timeout, timeout_at, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async_with_config, MaybeTlsStream, WebSocketStream};

/// Time allowed after the run to close each connection politely.
const CLOSE_GRACE: Duration = Duration::from_secs(2);

#[path = "../harness.rs"]
mod harness;
#[path = "../ws_deflate.rs"]
mod ws_deflate;

use harness::start_watchdog;

type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;
type Error = Box<dyn std::error::Error + Send + Sync>;

/// Command-line options.
struct Options {
    url: String,
    connections: usize,
    size: usize,
    duration: Duration,
    pipeline: usize,
    binary: bool,
    threads: usize,
    connect_timeout: Duration,
    /// Handshakes in flight at a time while connecting (0: all at once).
    connect_concurrency: usize,
    /// Local addresses the connections are bound to in turn (none: the system picks), so that
    /// more than one address's worth of ports can be open to one server.
    sources: Vec<std::net::IpAddr>,
    deflate: bool,
    idle: bool,
    room: bool,
}

const USAGE: &str = "usage: ws-load --url ws://127.0.0.1:PORT/ [--connections N] [--size BYTES] \
                     [--duration-secs S] [--pipeline N] [--binary] [--room] [--threads N] [--connect-timeout-secs S] [--connect-concurrency N] [--sources IP,IP]";

fn main() {
    let opts = match parse_args(std::env::args().skip(1)) {
        Ok(opts) => opts,
        Err(err) => fail(&format!("{err}\n{USAGE}")),
    };
    start_watchdog(
        "ws-load",
        opts.connect_timeout
            .saturating_add(opts.duration)
            .saturating_add(Duration::from_secs(10)),
    );
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads)
        .enable_all()
        .build()
        .unwrap_or_else(|err| fail(&format!("cannot start the runtime: {err}")));
    let work = async {
        if opts.idle {
            ws_deflate::idle(&opts).await
        } else if opts.deflate {
            ws_deflate::run(&opts).await
        } else {
            run(&opts).await
        }
    };
    match runtime.block_on(work) {
        Ok((messages, seconds)) => {
            let rate = messages as f64 / seconds;
            println!(r#"{{"messages":{messages},"seconds":{seconds:.3},"rate":{rate:.1}}}"#);
            // Everything is closed by now; do not wait for the runtime to wind down.
            exit(0)
        }
        Err(err) => fail(&err.to_string()),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("ws-load: {message}");
    exit(1)
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<Options, Error> {
    let mut opts = Options {
        url: String::new(),
        connections: 100,
        size: 32,
        duration: Duration::from_secs(5),
        pipeline: 16,
        binary: false,
        threads: 2,
        connect_timeout: Duration::from_secs(5),
        connect_concurrency: 0,
        sources: Vec::new(),
        deflate: false,
        idle: false,
        room: false,
    };
    while let Some(arg) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{arg} needs a value"));
        match arg.as_str() {
            "--binary" => opts.binary = true,
            "--deflate" => opts.deflate = true,
            "--idle" => opts.idle = true,
            "--room" => opts.room = true,
            "--url" => opts.url = value()?,
            "--connections" => opts.connections = count(&arg, &value()?)?,
            "--size" => opts.size = count(&arg, &value()?)?,
            "--pipeline" => opts.pipeline = count(&arg, &value()?)?,
            "--threads" => opts.threads = count(&arg, &value()?)?,
            "--duration-secs" => opts.duration = seconds(&arg, &value()?)?,
            "--connect-timeout-secs" => opts.connect_timeout = seconds(&arg, &value()?)?,
            "--connect-concurrency" => opts.connect_concurrency = value()?.parse()?,
            "--sources" => {
                opts.sources = value()?
                    .split(',')
                    .map(|a| a.trim().parse())
                    .collect::<Result<_, _>>()?
            }
            _ => return Err(format!("unknown argument {arg:?}").into()),
        }
    }
    if !opts.url.starts_with("ws://") {
        return Err("--url must be a ws:// URL".into());
    }
    if opts.room && (opts.binary || opts.size < ROOM_TAG_LEN) {
        return Err(format!("--room sends text of at least {ROOM_TAG_LEN} bytes").into());
    }
    if opts.connections == 0 || opts.pipeline == 0 || opts.threads == 0 || opts.duration.is_zero() {
        return Err(
            "--connections, --pipeline, --threads and --duration-secs must be positive".into(),
        );
    }
    Ok(opts)
}

fn count(arg: &str, value: &str) -> Result<usize, Error> {
    value
        .parse()
        .map_err(|_| format!("{arg}: not a whole number: {value:?}").into())
}

fn seconds(arg: &str, value: &str) -> Result<Duration, Error> {
    let parsed = value
        .parse()
        .ok()
        .and_then(|s| Duration::try_from_secs_f64(s).ok());
    parsed.ok_or_else(|| format!("{arg}: not a number of seconds: {value:?}").into())
}

/// Length of the tag (`r` and eight digits) that starts every message of a `--room` run.
const ROOM_TAG_LEN: usize = 9;

/// The `--room` tag of connection `index`.
fn room_tag(index: usize) -> String {
    format!("r{index:08}")
}

/// Connects everything, runs the load until the deadline, returns (echoes, elapsed seconds).
async fn run(opts: &Options) -> Result<(u64, f64), Error> {
    let sockets = connect_all(opts).await?;
    let start = Instant::now();
    let deadline = start + opts.duration;
    let tasks: Vec<_> = sockets
        .into_iter()
        .enumerate()
        .map(|(index, ws)| {
            let (message, own) = if opts.room {
                let tag = room_tag(index);
                let text = format!("{tag}{}", "x".repeat(opts.size - ROOM_TAG_LEN));
                (Message::text(text), Some(tag))
            } else if opts.binary {
                (Message::binary(vec![0xa5u8; opts.size]), None)
            } else {
                (Message::text("x".repeat(opts.size)), None)
            };
            tokio::spawn(drive(ws, message, own, opts.pipeline, opts.size, deadline))
        })
        .collect();
    let mut messages = 0;
    for task in tasks {
        // Every task returns by the deadline plus the close grace; the extra second guards against a bug.
        match timeout_at(deadline + CLOSE_GRACE + Duration::from_secs(1), task).await {
            Ok(Ok(result)) => messages += result?,
            Ok(Err(join)) => return Err(format!("a connection task failed: {join}").into()),
            Err(_) => return Err("a connection did not stop at the deadline".into()),
        }
    }
    Ok((messages, opts.duration.as_secs_f64()))
}

/// Opens all connections concurrently, each within the connect timeout.
async fn connect_all(opts: &Options) -> Result<Vec<Ws>, Error> {
    let slots =
        (opts.connect_concurrency > 0).then(|| Arc::new(Semaphore::new(opts.connect_concurrency)));
    let attempts = (0..opts.connections).map(|i| {
        let url = opts.url.clone();
        let slots = slots.clone();
        let source = (!opts.sources.is_empty()).then(|| opts.sources[i % opts.sources.len()]);
        tokio::spawn(timeout(opts.connect_timeout, async move {
            let _slot = match slots {
                Some(slots) => Some(slots.acquire_owned().await.expect("semaphore open")),
                None => None,
            };
            match source {
                Some(source) => connect_from(source, url).await,
                None => connect_async_with_config(url, None, true).await,
            }
        }))
    });
    let mut sockets = Vec::with_capacity(opts.connections);
    for attempt in futures_util::future::join_all(attempts).await {
        match attempt? {
            Ok(Ok((ws, _response))) => sockets.push(ws),
            Ok(Err(err)) => return Err(format!("cannot connect to {}: {err}", opts.url).into()),
            Err(_) => {
                return Err(format!(
                    "cannot connect to {}: timed out after {:?}",
                    opts.url, opts.connect_timeout
                )
                .into())
            }
        }
    }
    Ok(sockets)
}

/// Connects to `url` (ws://HOST:PORT/...) from local address `source`.
async fn connect_from(
    source: std::net::IpAddr,
    url: String,
) -> Result<
    (
        Ws,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    tokio_tungstenite::tungstenite::Error,
> {
    use tokio_tungstenite::tungstenite::Error as WsError;
    let host = url
        .strip_prefix("ws://")
        .and_then(|rest| rest.split('/').next())
        .ok_or_else(|| {
            WsError::Url(tokio_tungstenite::tungstenite::error::UrlError::UnsupportedUrlScheme)
        })?;
    let addr: std::net::SocketAddr = host
        .parse()
        .map_err(|_| WsError::Url(tokio_tungstenite::tungstenite::error::UrlError::NoHostName))?;
    let stream = harness::socket_from(source, addr)?.connect(addr).await?;
    stream.set_nodelay(true)?;
    tokio_tungstenite::client_async_with_config(url, MaybeTlsStream::Plain(stream), None).await
}

/// Runs one connection until the deadline and returns the echoes it received in time.
///
/// A writer task and this reader share a window of `pipeline` permits: the writer spends one per
/// message sent, the reader gives one back per echo. Reading and writing apart means a slow
/// writer can never stop the echoes from being drained (which could deadlock with big messages).
async fn drive(
    ws: Ws,
    message: Message,
    own: Option<String>,
    pipeline: usize,
    size: usize,
    deadline: Instant,
) -> Result<u64, Error> {
    let (sink, mut stream) = ws.split();
    let window = Arc::new(Semaphore::new(pipeline));
    let writer = tokio::spawn(write_loop(sink, message, Arc::clone(&window), deadline));
    let received = read_loop(&mut stream, &window, own.as_deref(), size, deadline).await;
    // The writer stops at the deadline too and hands back its half of the socket.
    if let Ok(sink) = writer.await {
        if let Ok(ws) = sink.reunite(stream) {
            close(ws).await;
        }
    }
    received
}

/// Sends messages while the window allows, until the deadline; returns the sink. Messages the
/// window allows at once go out in one batch and one flush, to spare system calls.
async fn write_loop(
    mut sink: SplitSink<Ws, Message>,
    message: Message,
    window: Arc<Semaphore>,
    deadline: Instant,
) -> SplitSink<Ws, Message> {
    loop {
        match timeout_at(deadline, window.acquire()).await {
            Ok(Ok(permit)) => permit.forget(),
            _ => return sink,
        }
        let mut batch = 1;
        while let Ok(permit) = window.try_acquire() {
            permit.forget();
            batch += 1;
        }
        let send = async {
            for _ in 0..batch {
                sink.feed(message.clone()).await?;
            }
            sink.flush().await
        };
        match timeout_at(deadline, send).await {
            Ok(Ok(())) => {}
            // Errors show up on the read side too, where they are reported.
            _ => return sink,
        }
    }
}

/// Counts the echoes received before the deadline, giving a permit back to the writer for each
/// (with `own`, a room run: counts every delivery, and gives a permit back for the connection's
/// own messages only).
async fn read_loop(
    stream: &mut SplitStream<Ws>,
    window: &Semaphore,
    own: Option<&str>,
    size: usize,
    deadline: Instant,
) -> Result<u64, Error> {
    let mut received = 0u64;
    loop {
        let message = match timeout_at(deadline, stream.next()).await {
            Err(_) => return Ok(received),
            Ok(None) => return Err("the server closed a connection during the run".into()),
            Ok(Some(Err(err))) => {
                return Err(format!("connection error during the run: {err}").into())
            }
            Ok(Some(Ok(message))) => message,
        };
        match message {
            Message::Text(ref text) if message.len() == size && own.is_some() => {
                received += 1;
                if own.is_some_and(|tag| text.as_str().starts_with(tag)) {
                    window.add_permits(1);
                }
            }
            Message::Text(_) | Message::Binary(_) if message.len() == size => {
                received += 1;
                window.add_permits(1);
            }
            Message::Text(_) | Message::Binary(_) => {
                return Err(format!("echo of {} bytes, expected {size}", message.len()).into())
            }
            Message::Close(frame) => {
                return Err(format!("the server closed a connection: {frame:?}").into())
            }
            // Pings are answered by tungstenite itself.
            _ => {}
        }
    }
}

/// Closes the connection politely and drains the echoes still in flight, so that the server is
/// idle again when the next run starts. Bounded by `CLOSE_GRACE`; errors here do not matter.
async fn close(mut ws: Ws) {
    let _ = timeout(CLOSE_GRACE, async {
        if ws.close(None).await.is_ok() {
            while let Some(Ok(_)) = ws.next().await {}
        }
    })
    .await;
}

//! Fan-out load generator: holds many subscribed WebSocket connections and times one publish.
//!
//! Usage: `ws-fanout --url ws://127.0.0.1:PORT/ [--connections 10000] [--rounds 20] [--warmup 3]
//! [--threads 2] [--size 64] [--sources 127.0.0.2,127.0.0.3] [--heartbeat-secs S]`
//!
//! The server under test must subscribe every connection on open and answer five text
//! commands on any connection: `go` (publish one text message of `--size` bytes to every
//! connection), `count` (reply `count <subscribers>`), `mem` (reply `mem <rss bytes>`), `js`
//! (reply `js <median microseconds its JS thread spent in one publish>`) and `cpu` (reply
//! `cpu <microseconds of CPU the process has used>`).
//!
//! `--sources` opens the connections from these local addresses in turn (past the 64k ports of
//! one address). `--heartbeat-secs S` adds a heartbeat window after the publish rounds: for S
//! seconds nothing is published, every receiver answers the server's pings with pongs, and the
//! line reports the pings received, the pongs sent, the server's CPU in the window and how many
//! connections are still subscribed after it (a pong the server missed would close one).
//!
//! One control connection (tungstenite) sends the commands; the others are raw TCP sockets after
//! a hand-made handshake that only count bytes, so the generator spends as little CPU per
//! receiver as possible. A round is the time from sending `go` until every connection (the
//! control one included) has the whole message. Prints one JSON line with the median, minimum
//! and mean round time and the server's RSS before and after the connections opened. Bounded:
//! every wait has a timeout and a watchdog ends the process.

#[path = "../harness.rs"]
mod harness;

use std::process::exit;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{Notify, Semaphore};
use tokio::time::{timeout, Instant};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{connect_async, MaybeTlsStream, WebSocketStream};

type Error = Box<dyn std::error::Error + Send + Sync>;
type Ws = WebSocketStream<MaybeTlsStream<TcpStream>>;

const STEP: Duration = Duration::from_secs(30);

struct Options {
    url: String,
    connections: usize,
    rounds: usize,
    warmup: usize,
    threads: usize,
    size: usize,
    sources: Vec<std::net::IpAddr>,
    heartbeat_secs: u64,
}

fn main() {
    let opts = match parse_args() {
        Ok(o) => o,
        Err(e) => fail(&format!(
            "{e}\nusage: ws-fanout --url ws://127.0.0.1:PORT/ [--connections N] [--rounds N] [--warmup N] [--threads N] [--size BYTES] [--sources IP,IP] [--heartbeat-secs S]"
        )),
    };
    harness::start_watchdog("ws-fanout", Duration::from_secs(600));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(opts.threads)
        .enable_all()
        .build()
        .unwrap_or_else(|e| fail(&format!("cannot start the runtime: {e}")));
    match rt.block_on(run(&opts)) {
        Ok(line) => {
            println!("{line}");
            exit(0)
        }
        Err(e) => fail(&e.to_string()),
    }
}

fn fail(message: &str) -> ! {
    eprintln!("ws-fanout: {message}");
    exit(1)
}

fn parse_args() -> Result<Options, Error> {
    let mut o = Options {
        url: String::new(),
        connections: 10_000,
        rounds: 20,
        warmup: 3,
        threads: 2,
        size: 64,
        sources: Vec::new(),
        heartbeat_secs: 0,
    };
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or_else(|| format!("{arg} needs a value"))?;
        let n = || -> Result<usize, Error> {
            value
                .parse()
                .map_err(|_| format!("{arg}: not a whole number").into())
        };
        match arg.as_str() {
            "--url" => o.url = value.clone(),
            "--connections" => o.connections = n()?,
            "--rounds" => o.rounds = n()?,
            "--warmup" => o.warmup = n()?,
            "--threads" => o.threads = n()?,
            "--size" => o.size = n()?,
            "--heartbeat-secs" => o.heartbeat_secs = n()? as u64,
            "--sources" => {
                o.sources = value
                    .split(',')
                    .map(|s| s.trim().parse())
                    .collect::<Result<_, _>>()
                    .map_err(|_| format!("--sources: not a list of IP addresses: {value}"))?
            }
            _ => return Err(format!("unknown argument {arg:?}").into()),
        }
    }
    if !o.url.starts_with("ws://") || o.connections < 2 || o.rounds == 0 || o.threads == 0 {
        return Err("need a ws:// URL, at least 2 connections, 1 round, 1 thread".into());
    }
    if o.size > 125 {
        return Err("--size must be at most 125 (one short frame)".into());
    }
    Ok(o)
}

/// Sends a command on the control connection and returns the number in its `<name> <n>` reply.
async fn ask(ctl: &mut Ws, name: &str) -> Result<u64, Error> {
    ctl.send(Message::text(name))
        .await
        .map_err(|e| format!("control connection, sending {name}: {e}"))?;
    loop {
        let msg = timeout(STEP, ctl.next())
            .await
            .map_err(|_| format!("no reply to {name}"))?
            .ok_or("the control connection closed")?
            .map_err(|e| format!("control connection, waiting for {name}: {e}"))?;
        if let Message::Text(t) = msg {
            if let Some(rest) = t.as_str().strip_prefix(name) {
                return Ok(rest.trim().parse()?);
            }
        }
    }
}

/// Opens a raw WebSocket connection (no extensions), from local address `source` when given,
/// and returns the socket after the 101.
async fn raw_connect(
    addr: &str,
    path: &str,
    source: Option<std::net::IpAddr>,
) -> Result<TcpStream, Error> {
    let mut s = match source {
        None => TcpStream::connect(addr).await?,
        Some(source) => {
            let to: std::net::SocketAddr = addr.parse()?;
            harness::socket_from(source, to)?.connect(to).await?
        }
    };
    s.set_nodelay(true)?;
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n"
    );
    s.write_all(req.as_bytes()).await?;
    let mut head = Vec::with_capacity(256);
    let mut byte = [0u8; 1];
    // Byte by byte so nothing after the head is consumed; heads are small.
    while !head.ends_with(b"\r\n\r\n") {
        if s.read(&mut byte).await? == 0 || head.len() > 8192 {
            return Err("the server closed during the handshake".into());
        }
        head.push(byte[0]);
    }
    if !head.starts_with(b"HTTP/1.1 101") {
        return Err(format!(
            "handshake refused: {}",
            String::from_utf8_lossy(&head[..head.len().min(80)])
        )
        .into());
    }
    Ok(s)
}

async fn run(o: &Options) -> Result<String, Error> {
    let rest = o.url.trim_start_matches("ws://");
    let (addr, path) = match rest.find('/') {
        Some(i) => (&rest[..i], &rest[i..]),
        None => (rest, "/"),
    };
    let (mut ctl, _) = timeout(STEP, connect_async(o.url.as_str()))
        .await
        .map_err(|_| "control connection timed out")??;
    let rss_base = ask(&mut ctl, "mem").await?;

    let received = Arc::new(AtomicUsize::new(0));
    let done = Arc::new(Notify::new());
    let target = Arc::new(AtomicUsize::new(usize::MAX));
    let gate = Arc::new(Semaphore::new(256));
    // Raw receivers count whole messages and answer pings.
    let beats = Arc::new(Beats::default());
    let mut conns = Vec::with_capacity(o.connections - 1);
    for i in 1..o.connections {
        // A server with a heartbeat would drop a control connection nobody reads: reading a
        // reply now and then answers its pings.
        if i % 1000 == 0 {
            ask(&mut ctl, "count").await?;
        }
        let permit = gate.clone().acquire_owned().await?;
        let (addr, path) = (addr.to_owned(), path.to_owned());
        let source = (!o.sources.is_empty()).then(|| o.sources[i % o.sources.len()]);
        let (received, done, target) = (received.clone(), done.clone(), target.clone());
        let (beats, size) = (beats.clone(), o.size);
        conns.push(tokio::spawn(async move {
            let r = timeout(STEP, raw_connect(&addr, &path, source)).await;
            drop(permit);
            match r {
                // Read (and answer pings) from the start: a server's heartbeat may begin before
                // the last connection opens.
                Ok(Ok(s)) => {
                    tokio::spawn(receive(s, size, received, done, target, beats));
                    Ok(())
                }
                Ok(Err(e)) => Err(e.to_string()),
                Err(_) => Err("connect timed out".to_string()),
            }
        }));
    }
    for c in conns {
        c.await?.map_err(|e| format!("cannot connect: {e}"))?;
    }
    // Wait until the server has subscribed every connection (bounded).
    let mut subscribed = 0;
    for _ in 0..600 {
        subscribed = ask(&mut ctl, "count").await?;
        if subscribed as usize >= o.connections {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    if (subscribed as usize) < o.connections {
        return Err(format!("only {subscribed} of {} subscribed", o.connections).into());
    }
    let rss_loaded = ask(&mut ctl, "mem").await?;

    let mut times = Vec::with_capacity(o.rounds);
    for round in 0..o.warmup + o.rounds {
        received.store(0, Ordering::Release);
        target.store(o.connections, Ordering::Release);
        let start = Instant::now();
        ctl.send(Message::text("go")).await?;
        // The control connection is a receiver too.
        loop {
            let msg = timeout(STEP, ctl.next())
                .await
                .map_err(|_| "the control connection got no publish")?
                .ok_or("the control connection closed")??;
            if matches!(&msg, Message::Text(t) if t.len() == o.size) {
                let now = received.fetch_add(1, Ordering::AcqRel) + 1;
                if now == o.connections {
                    done.notify_one();
                }
                break;
            }
        }
        timeout(STEP, done.notified()).await.map_err(|_| {
            format!(
                "round {round}: only {} of {} receivers got the message",
                received.load(Ordering::Acquire),
                o.connections
            )
        })?;
        if round >= o.warmup {
            times.push(start.elapsed().as_secs_f64() * 1000.0);
        }
        target.store(usize::MAX, Ordering::Release);
    }
    // How long the server's JS thread was busy in each publish call (median, microseconds).
    let js_us = ask(&mut ctl, "js").await?;
    let heartbeat = if o.heartbeat_secs > 0 {
        heartbeat(&mut ctl, o.heartbeat_secs, &beats).await?
    } else {
        String::new()
    };
    times.sort_by(f64::total_cmp);
    let p50 = times[times.len() / 2];
    let min = times[0];
    let mean = times.iter().sum::<f64>() / times.len() as f64;
    let per_conn = rss_loaded.saturating_sub(rss_base) as f64 / o.connections as f64;
    Ok(format!(
        r#"{{"connections":{},"rounds":{},"p50_ms":{p50:.3},"min_ms":{min:.3},"mean_ms":{mean:.3},"rss_base":{rss_base},"rss_loaded":{rss_loaded},"bytes_per_connection":{per_conn:.0},"js_publish_us":{js_us}{heartbeat}}}"#,
        o.connections, o.rounds
    ))
}

/// Pings the receivers got and pongs they sent.
#[derive(Default)]
struct Beats {
    pings: AtomicUsize,
    pongs: AtomicUsize,
}

/// Reads one raw connection: counts whole text messages of `size` bytes and answers every ping
/// with a pong (masked with a zero key, as a client must mask).
async fn receive(
    mut s: TcpStream,
    size: usize,
    received: Arc<AtomicUsize>,
    done: Arc<Notify>,
    target: Arc<AtomicUsize>,
    beats: Arc<Beats>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut filled = 0usize;
    loop {
        let n = match s.read(&mut buf[filled..]).await {
            Ok(0) | Err(_) => return,
            Ok(n) => n,
        };
        filled += n;
        let mut at = 0;
        // Server frames are unmasked; this generator only meets short ones (<= 125 bytes).
        while filled - at >= 2 {
            let (opcode, len) = (buf[at] & 0x0f, usize::from(buf[at + 1] & 0x7f));
            if len > 125 {
                eprintln!("ws-fanout: unexpected frame of {len} bytes");
                return;
            }
            if filled - at < 2 + len {
                break;
            }
            match opcode {
                0x1 if len == size => {
                    let now = received.fetch_add(1, Ordering::AcqRel) + 1;
                    if now == target.load(Ordering::Acquire) {
                        done.notify_one();
                    }
                }
                0x9 => {
                    beats.pings.fetch_add(1, Ordering::Relaxed);
                    let mut pong = Vec::with_capacity(6 + len);
                    pong.extend_from_slice(&[0x8a, 0x80 | len as u8, 0, 0, 0, 0]);
                    pong.extend_from_slice(&buf[at + 2..at + 2 + len]);
                    if s.write_all(&pong).await.is_err() {
                        return;
                    }
                    beats.pongs.fetch_add(1, Ordering::Relaxed);
                }
                0x8 => return,
                _ => {}
            }
            at += 2 + len;
        }
        buf.copy_within(at..filled, 0);
        filled -= at;
    }
}

/// The heartbeat window: `secs` seconds with no publish, the control connection asked for the
/// count every second (which also answers its pings). Returns the JSON fields it adds.
async fn heartbeat(ctl: &mut Ws, secs: u64, beats: &Beats) -> Result<String, Error> {
    let cpu_before = ask(ctl, "cpu").await?;
    let pings_before = beats.pings.load(Ordering::Relaxed);
    let pongs_before = beats.pongs.load(Ordering::Relaxed);
    let start = Instant::now();
    let mut subscribed = 0;
    while start.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        subscribed = ask(ctl, "count").await?;
    }
    let cpu_after = ask(ctl, "cpu").await?;
    let pings = beats.pings.load(Ordering::Relaxed) - pings_before;
    let pongs = beats.pongs.load(Ordering::Relaxed) - pongs_before;
    let cpu_ms = cpu_after.saturating_sub(cpu_before) as f64 / 1000.0;
    let window = start.elapsed().as_secs_f64();
    Ok(format!(
        r#","heartbeat_secs":{window:.1},"heartbeat_pings":{pings},"heartbeat_pongs":{pongs},"heartbeat_cpu_ms":{cpu_ms:.1},"subscribed_after_heartbeat":{subscribed}"#
    ))
}

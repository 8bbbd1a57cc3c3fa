//! The pure-Rust ceiling of the WebSocket benchmarks: the least work a server can do per message on
//! this kernel. Raw tokio sockets, a hand-made handshake, no extensions, no queues and no tasks
//! between the socket and the frame: an echo writes header and payload with one vectored write
//! from the connection's own task, and a fan-out writes the ready-made frame to every socket in
//! one loop (as uWebSockets' `publish` does).
//!
//! Usage: `ws-ceiling [--port N] [--threads N]` (port 0, the default, picks a free port; two
//! runtime workers by default). Listens on 127.0.0.1 only, prints `LISTENING <port>`, and exits
//! when its stdin reaches end of file.
//!
//! Every data message is echoed, except the fan-out commands of ws-fanout (text `go`, `count`,
//! `mem`, `js`): `go` writes one text frame of `FANOUT_SIZE` bytes (default 64) to every open
//! connection; `js` answers the median microseconds one such loop took.

#[path = "../harness.rs"]
mod harness;
use harness::exit_on_stdin_eof;

use std::collections::HashMap;
use std::io::IoSlice;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use hypersock_core::ws::handshake::accept_key;
use tokio::net::{TcpListener, TcpStream};

type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// Largest message accepted (the benchmarks send at most 16 KiB).
const MAX_PAYLOAD: usize = 1 << 20;

#[derive(Default)]
struct Shared {
    conns: Mutex<HashMap<u64, Arc<TcpStream>>>,
    next_id: AtomicU64,
    /// Microseconds of every fan-out loop.
    loops: Mutex<Vec<u64>>,
    /// The fan-out frame: FIN + text, 7-bit length, payload of 'x'.
    fanout: Vec<u8>,
}

fn main() -> Result<(), BoxError> {
    let (port, threads) = parse_args(std::env::args().skip(1))?;
    let size: usize = std::env::var("FANOUT_SIZE")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(64)
        .min(125);
    let mut fanout = vec![0x81, size as u8];
    fanout.resize(2 + size, b'x');
    let shared = Arc::new(Shared {
        fanout,
        ..Shared::default()
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()?;
    runtime.block_on(serve(port, shared))
}

fn parse_args(mut args: impl Iterator<Item = String>) -> Result<(u16, usize), BoxError> {
    let (mut port, mut threads) = (0u16, 2usize);
    while let Some(arg) = args.next() {
        let value = args.next().ok_or(format!("{arg} needs a value"))?;
        match arg.as_str() {
            "--port" => {
                port = value
                    .parse()
                    .map_err(|_| format!("invalid port {value:?}"))?
            }
            "--threads" => {
                threads = value
                    .parse()
                    .map_err(|_| format!("invalid thread count {value:?}"))?
            }
            other => {
                return Err(format!(
                    "unknown argument {other:?}; usage: ws-ceiling [--port N] [--threads N]"
                )
                .into())
            }
        }
    }
    Ok((port, threads.max(1)))
}

async fn serve(port: u16, shared: Arc<Shared>) -> Result<(), BoxError> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, port))).await?;
    println!("LISTENING {}", listener.local_addr()?.port());
    exit_on_stdin_eof();
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        tokio::spawn(async move {
            let id = shared.next_id.fetch_add(1, Ordering::Relaxed);
            let stream = Arc::new(stream);
            // Errors are the peer going away or breaking the protocol: drop the connection.
            let _ = connection(id, &stream, &shared).await;
            shared.conns.lock().unwrap().remove(&id);
        });
    }
}

/// Reads into `buf` (growing it when full); Ok(false) at end of stream.
async fn fill(stream: &TcpStream, buf: &mut Vec<u8>, len: &mut usize) -> std::io::Result<bool> {
    if *len == buf.len() {
        buf.resize(buf.len() * 2, 0);
    }
    loop {
        stream.readable().await?;
        match stream.try_read(&mut buf[*len..]) {
            Ok(0) => return Ok(false),
            Ok(n) => {
                *len += n;
                return Ok(true);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
}

/// Writes every slice in full, with as few vectored writes as the socket allows.
async fn write_all(stream: &TcpStream, parts: &[&[u8]]) -> std::io::Result<()> {
    let mut parts: Vec<&[u8]> = parts.iter().copied().filter(|p| !p.is_empty()).collect();
    let mut first = 0;
    while first < parts.len() {
        stream.writable().await?;
        let slices: Vec<IoSlice> = parts[first..].iter().map(|p| IoSlice::new(p)).collect();
        match stream.try_write_vectored(&slices) {
            Ok(mut n) => {
                while n > 0 {
                    let k = n.min(parts[first].len());
                    parts[first] = &parts[first][k..];
                    n -= k;
                    if parts[first].is_empty() {
                        first += 1;
                    }
                }
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// The header of an unmasked server frame: its bytes and length.
fn server_header(first: u8, len: usize) -> ([u8; 10], usize) {
    let mut out = [first, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    let n = match len {
        n if n < 126 => {
            out[1] = n as u8;
            2
        }
        n if n < 65536 => {
            out[1] = 126;
            out[2..4].copy_from_slice(&(n as u16).to_be_bytes());
            4
        }
        n => {
            out[1] = 127;
            out[2..10].copy_from_slice(&(n as u64).to_be_bytes());
            10
        }
    };
    (out, n)
}

async fn connection(id: u64, stream: &Arc<TcpStream>, shared: &Shared) -> Result<(), BoxError> {
    let mut buf = vec![0u8; 64 * 1024];
    let mut len = 0;
    // Handshake: the request head, then 101 with the accept key.
    let head_end = loop {
        if let Some(i) = buf[..len].windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
        if len > 16 * 1024 || !fill(stream, &mut buf, &mut len).await? {
            return Err("bad handshake".into());
        }
    };
    let head = std::str::from_utf8(&buf[..head_end])?;
    let key = head
        .lines()
        .find_map(|l| {
            let (name, value) = l.split_once(':')?;
            name.eq_ignore_ascii_case("sec-websocket-key")
                .then(|| value.trim())
        })
        .ok_or("no Sec-WebSocket-Key")?;
    let reply = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
         Sec-WebSocket-Accept: {}\r\n\r\n",
        accept_key(key.as_bytes())
    );
    write_all(stream, &[reply.as_bytes()]).await?;
    buf.copy_within(head_end..len, 0);
    len -= head_end;
    shared.conns.lock().unwrap().insert(id, stream.clone());

    let mut start = 0;
    // The frames of one read: first byte, payload offset, payload length.
    let mut frames: Vec<(u8, usize, usize)> = Vec::new();
    let mut heads: Vec<([u8; 10], usize)> = Vec::new();
    loop {
        // Unmask every whole frame in the buffer, then answer them all with one write.
        frames.clear();
        while let Some((header, payload_len)) = frame_header(&buf[start..len])? {
            let at = start + header;
            let mask: [u8; 4] = buf[at - 4..at].try_into().unwrap();
            for (i, b) in buf[at..at + payload_len].iter_mut().enumerate() {
                *b ^= mask[i & 3];
            }
            frames.push((buf[start], at, payload_len));
            start = at + payload_len;
        }
        heads.clear();
        let mut replies = Vec::with_capacity(frames.len());
        for &(first, at, n) in &frames {
            let payload = &buf[at..at + n];
            match first & 0x0f {
                0x8 => {
                    let code = if n >= 2 { &payload[..2] } else { &[] };
                    replies.push((0x88, code));
                    break;
                }
                0x9 => replies.push((0x8a, payload)),
                0xa => {}
                _ if first == 0x81 && command(stream, payload, shared).await? => {}
                _ => replies.push((first, payload)),
            }
        }
        heads.extend(
            replies
                .iter()
                .map(|&(first, p)| server_header(first, p.len())),
        );
        let mut parts: Vec<&[u8]> = Vec::with_capacity(replies.len() * 2);
        for (&(_, payload), (head, n)) in replies.iter().zip(&heads) {
            parts.push(&head[..*n]);
            parts.push(payload);
        }
        for chunk in parts.chunks(512) {
            write_all(stream, chunk).await?;
        }
        if replies.last().is_some_and(|r| r.0 == 0x88) {
            return Ok(());
        }
        // Keep the unfinished frame at the front of the buffer.
        buf.copy_within(start..len, 0);
        len -= start;
        start = 0;
        if !fill(stream, &mut buf, &mut len).await? {
            return Ok(());
        }
    }
}

/// The length of a whole client frame's header (mask included) and of its payload, or None when
/// the buffer does not hold the whole frame yet.
fn frame_header(b: &[u8]) -> Result<Option<(usize, usize)>, BoxError> {
    if b.len() < 2 {
        return Ok(None);
    }
    if b[1] & 0x80 == 0 {
        return Err("unmasked client frame".into());
    }
    let (ext, payload) = match b[1] & 0x7f {
        126 if b.len() >= 4 => (2, u16::from_be_bytes([b[2], b[3]]) as usize),
        127 if b.len() >= 10 => (8, u64::from_be_bytes(b[2..10].try_into().unwrap()) as usize),
        126 | 127 => return Ok(None),
        n => (0, n as usize),
    };
    if payload > MAX_PAYLOAD {
        return Err("message too big".into());
    }
    let header = 2 + ext + 4;
    Ok((b.len() >= header + payload).then_some((header, payload)))
}

/// Answers the ws-fanout commands; false when `text` is not one.
async fn command(stream: &TcpStream, text: &[u8], shared: &Shared) -> Result<bool, BoxError> {
    let reply = match text {
        b"go" => {
            let t = Instant::now();
            let conns: Vec<Arc<TcpStream>> =
                shared.conns.lock().unwrap().values().cloned().collect();
            for conn in &conns {
                // The frame is small and the receivers drain their sockets, so it fits; a
                // receiver whose buffer is full simply misses it (and the run times out).
                let _ = conn.try_write(&shared.fanout);
            }
            shared
                .loops
                .lock()
                .unwrap()
                .push(t.elapsed().as_micros() as u64);
            return Ok(true);
        }
        b"count" => format!("count {}", shared.conns.lock().unwrap().len()),
        b"mem" => format!("mem {}", rss()),
        b"js" => {
            let mut loops = shared.loops.lock().unwrap().clone();
            loops.sort_unstable();
            format!("js {}", loops.get(loops.len() / 2).copied().unwrap_or(0))
        }
        _ => return Ok(false),
    };
    write_all(stream, &[&[0x81, reply.len() as u8], reply.as_bytes()]).await?;
    Ok(true)
}

/// Resident memory in bytes, from /proc/self/statm.
fn rss() -> u64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: u64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    pages * 4096
}

//! The Redis adapter's RESP2 code (the very file `crates/core/src/hub/resp.rs`, compiled here
//! too) beside redis-rs on the work the adapter does, against one redis-server on loopback:
//!
//! - `PUBLISH` round trip on one connection, one at a time: p50 and p99;
//! - a message from a publishing connection to a subscribing one (`SUBSCRIBE`, a push): p50, p99;
//! - `PUBLISH` in pipelined batches of 512 (the adapter's batch): messages per second.
//!
//! Usage: `redis-clients-bench <port> [rounds]`; prints one JSON line per measurement.

use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures_util::StreamExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

#[allow(dead_code)]
#[path = "../../../crates/core/src/hub/resp.rs"]
mod resp;

const PAYLOAD: &[u8] = &[b'x'; 64];
const BATCH: usize = 512;

/// The adapter's connection, as `hub/redis.rs` reads and writes it (without TLS).
struct Conn {
    stream: TcpStream,
    buf: BytesMut,
    out: BytesMut,
}

impl Conn {
    async fn open(port: u16) -> Conn {
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        stream.set_nodelay(true).unwrap();
        Conn {
            stream,
            buf: BytesMut::with_capacity(8 << 10),
            out: BytesMut::new(),
        }
    }

    async fn send(&mut self) {
        self.stream.write_all(&self.out).await.unwrap();
        self.out.clear();
    }

    async fn read(&mut self) -> resp::Value {
        loop {
            if let Some(v) = resp::parse(&mut self.buf).unwrap() {
                return v;
            }
            assert!(self.stream.read_buf(&mut self.buf).await.unwrap() > 0);
        }
    }
}

fn report(what: &str, client: &str, samples: &mut [Duration]) {
    samples.sort();
    let at = |q: f64| samples[((samples.len() as f64 * q) as usize).min(samples.len() - 1)];
    println!(
        "{{\"what\":\"{what}\",\"client\":\"{client}\",\"p50_us\":{:.1},\"p99_us\":{:.1}}}",
        at(0.5).as_secs_f64() * 1e6,
        at(0.99).as_secs_f64() * 1e6
    );
}

fn rate(what: &str, client: &str, n: usize, took: Duration) {
    println!(
        "{{\"what\":\"{what}\",\"client\":\"{client}\",\"per_s\":{:.0}}}",
        n as f64 / took.as_secs_f64()
    );
}

async fn ours(port: u16, rounds: usize) {
    let mut publisher = Conn::open(port).await;
    // PUBLISH round trips.
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..rounds + 1000 {
        let start = Instant::now();
        resp::command(&mut publisher.out, &[b"PUBLISH", b"bench-rt", PAYLOAD]);
        publisher.send().await;
        assert!(matches!(publisher.read().await, resp::Value::Int(_)));
        if i >= 1000 {
            samples.push(start.elapsed());
        }
    }
    report("publish-round-trip", "hypersock", &mut samples);

    // Publisher to subscriber.
    let mut subscriber = Conn::open(port).await;
    resp::command(&mut subscriber.out, &[b"SUBSCRIBE", b"bench-sub"]);
    subscriber.send().await;
    subscriber.read().await;
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..rounds + 1000 {
        let start = Instant::now();
        resp::command(&mut publisher.out, &[b"PUBLISH", b"bench-sub", PAYLOAD]);
        publisher.send().await;
        let resp::Value::Array(Some(push)) = subscriber.read().await else {
            panic!("not a push")
        };
        assert_eq!(push.len(), 3);
        if i >= 1000 {
            samples.push(start.elapsed());
        }
        publisher.read().await;
    }
    report("publish-to-subscriber", "hypersock", &mut samples);

    // Pipelined batches.
    let total = rounds * 10;
    let start = Instant::now();
    for _ in 0..total / BATCH {
        for _ in 0..BATCH {
            resp::command(&mut publisher.out, &[b"PUBLISH", b"bench-pipe", PAYLOAD]);
        }
        publisher.send().await;
        for _ in 0..BATCH {
            publisher.read().await;
        }
    }
    rate(
        "publish-pipelined",
        "hypersock",
        total / BATCH * BATCH,
        start.elapsed(),
    );
}

async fn redis_rs(port: u16, rounds: usize) {
    let client = redis::Client::open(format!("redis://127.0.0.1:{port}/")).unwrap();
    let mut publisher = client.get_multiplexed_async_connection().await.unwrap();
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..rounds + 1000 {
        let start = Instant::now();
        let _: i64 = redis::cmd("PUBLISH")
            .arg("bench-rt")
            .arg(PAYLOAD)
            .query_async(&mut publisher)
            .await
            .unwrap();
        if i >= 1000 {
            samples.push(start.elapsed());
        }
    }
    report("publish-round-trip", "redis-rs", &mut samples);

    let mut pubsub = client.get_async_pubsub().await.unwrap();
    pubsub.subscribe("bench-sub").await.unwrap();
    let mut messages = pubsub.on_message();
    let mut samples = Vec::with_capacity(rounds);
    for i in 0..rounds + 1000 {
        let start = Instant::now();
        let mut cmd = redis::cmd("PUBLISH");
        cmd.arg("bench-sub").arg(PAYLOAD);
        let publish = cmd.query_async::<i64>(&mut publisher);
        let (published, msg) = tokio::join!(publish, messages.next());
        published.unwrap();
        assert_eq!(msg.unwrap().get_payload_bytes().len(), PAYLOAD.len());
        if i >= 1000 {
            samples.push(start.elapsed());
        }
    }
    report("publish-to-subscriber", "redis-rs", &mut samples);

    let total = rounds * 10;
    let start = Instant::now();
    for _ in 0..total / BATCH {
        let mut pipe = redis::pipe();
        for _ in 0..BATCH {
            pipe.cmd("PUBLISH").arg("bench-pipe").arg(PAYLOAD);
        }
        let _: Vec<i64> = pipe.query_async(&mut publisher).await.unwrap();
    }
    rate(
        "publish-pipelined",
        "redis-rs",
        total / BATCH * BATCH,
        start.elapsed(),
    );
}

fn main() {
    let mut args = std::env::args().skip(1);
    let port: u16 = args.next().expect("port").parse().expect("port");
    let rounds: usize = args.next().map_or(20_000, |r| r.parse().expect("rounds"));
    // One thread, as the adapter's connections share the addon's runtime with everything else.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        // Each client twice, alternating, so neither gets only the cold or the warm Redis.
        for _ in 0..2 {
            ours(port, rounds).await;
            redis_rs(port, rounds).await;
        }
    });
}

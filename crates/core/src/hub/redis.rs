//! An [`Adapter`] that relays publishes between processes through Redis pub/sub.
//!
//! Each process (node) has a random id and two connections to Redis: one that publishes, in
//! order, from a bounded queue (so one publisher's messages keep their order) and one that
//! subscribes to the data and control channels. A node ignores its own publishes when they come
//! back, so every receiver gets a message exactly once. Room sizes across nodes are asked on the
//! control channel: `PUBLISH` says how many nodes heard the question, and the asker waits for
//! that many answers.
//!
//! When Redis goes away, local delivery goes on; the adapter reports an error, reconnects with
//! backoff and reports the reconnection. Publishes made while the publishing connection is down
//! wait in the queue (up to its bound; beyond it they are dropped); Redis pub/sub keeps nothing
//! for a subscriber that is away, so remote messages sent meanwhile are lost, as with any Redis
//! pub/sub adapter.
//!
//! In streams mode ([`Mode::Streams`]) the data path is a Redis Stream instead: every publish is
//! appended (`XADD`, capped at the history size) and every node, the publisher's own included,
//! reads the stream from where it stopped (`XREAD`) and delivers what it reads. A node that loses
//! Redis resumes from its last id, so nothing is lost within the history; each publisher numbers
//! its messages, so one sent again after a lost reply is delivered once. The history also lets a
//! client that reconnects catch up ([`Hub::join_since`]). See [`stream`].
//!
//! With a Redis Cluster ([`RedisOptions::cluster`]) the hub's own names share one hash tag (one
//! shard, see [`cluster`]); in pub/sub mode each room has its own sharded channel, so rooms
//! spread over the shards (see [`sharded`]).
//!
//! The protocol client is the few lines of RESP2 in [`super::resp`]: two commands (`PUBLISH`,
//! `SUBSCRIBE`, plus `AUTH`) do not warrant a full Redis client and its dependencies.
//!
//! `rediss://` connects over TLS with the same rustls configuration as the HTTP client
//! ([`crate::tls::client_config`] from [`RedisOptions::tls`]): custom CAs, a client certificate
//! for servers that require one, and `reject_unauthorized`. A failed handshake is reported and
//! retried like any other connection failure.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use bytes::{BufMut, Bytes, BytesMut};
use rustls_pki_types::ServerName;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_rustls::TlsConnector;
use tokio_util::sync::CancellationToken;

use super::resp::{self, Value};
use super::{Adapter, AdapterFuture, ClusterMember, Hub, Inner, MembersFuture, ReplayFuture};
use crate::error::{Error, Result, TlsFailure};
use crate::net::NetStream;
use crate::tls::{classify_io, client_config, ClientTlsOptions};
use crate::ws::PreparedMessage;

mod cluster;
mod sharded;
mod stream;

/// Options of [`RedisAdapter::start`].
#[derive(Debug, Clone)]
pub struct RedisOptions {
    /// `redis://[user:password@]host[:port]`, or `rediss://` for TLS (port 6379 by default for
    /// both).
    pub url: String,
    /// Prefix of the channel names; hubs that share it share rooms. Default `hypersock`.
    pub channel: String,
    /// How long a cross-node room size waits for the other nodes' answers.
    pub request_timeout: Duration,
    /// Publishes held while the publishing connection is down; more are dropped.
    pub max_queue: usize,
    /// TLS settings of a `rediss://` URL (CAs, client certificate, ...); `None` uses the
    /// defaults (the webpki roots, no client certificate). Only allowed with `rediss://`.
    pub tls: Option<ClientTlsOptions>,
    /// Pub/sub (at most once) or streams (at least once, with a history).
    pub mode: Mode,
    /// Redis Cluster: `redis://` URLs of some of its nodes (then `url` is not used). The hub's
    /// traffic goes to the primary serving the slot of `{channel}`.
    pub cluster: Vec<String>,
}

/// How the adapter relays messages between processes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Mode {
    /// Redis pub/sub: what a node misses while away from Redis is lost.
    #[default]
    PubSub,
    /// A Redis Stream: nodes resume where they stopped, clients can catch up.
    Streams(StreamOptions),
}

/// Options of [`Mode::Streams`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOptions {
    /// Messages the stream keeps (`XADD MAXLEN ~`: Redis may keep up to about a hundred more).
    pub history_size: usize,
    /// Drop the whole history when nothing was published for this long (`PEXPIRE` after each
    /// batch); `None` keeps it.
    pub history_ttl: Option<Duration>,
    /// Start every delivered message with its stream id and a space, for clients that resume
    /// with [`Hub::join_since`].
    pub stamp_ids: bool,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            history_size: 10_000,
            history_ttl: None,
            stamp_ids: false,
        }
    }
}

impl Default for RedisOptions {
    fn default() -> Self {
        RedisOptions {
            url: "redis://127.0.0.1:6379".into(),
            channel: "hypersock".into(),
            request_timeout: Duration::from_secs(2),
            max_queue: 65_536,
            tls: None,
            mode: Mode::PubSub,
            cluster: Vec::new(),
        }
    }
}

/// What the adapter reports about its connections to Redis.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AdapterEvent {
    /// Subscribed for the first time: remote publishes now arrive.
    Ready,
    /// A connection to Redis failed or was lost (reported once per outage and connection).
    Error {
        /// The stable code of the cause ([`Error::code`]).
        code: &'static str,
        /// What failed and why, for people.
        message: String,
    },
    /// Subscribed again after an outage.
    Reconnect,
}

/// Receives [`AdapterEvent`]s; called on tokio threads, must not block.
pub type EventSink = Arc<dyn Fn(AdapterEvent) + Send + Sync>;

const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
const NODE_LEN: usize = 16;

struct Outbound {
    channel: Bytes,
    frame: Bytes,
    /// A room-size question: its id, to learn how many nodes heard it.
    query: Option<u64>,
    /// Appended to the stream (`XADD`) rather than published, and kept until Redis took it.
    stream: bool,
    /// The publisher's number for a stream entry (0 until the publisher takes it).
    seq: u64,
}

impl Outbound {
    fn control(channel: Bytes, frame: Bytes, query: Option<u64>) -> Outbound {
        Outbound {
            channel,
            frame,
            query,
            stream: false,
            seq: 0,
        }
    }
}

/// What the other nodes answered to a question: the sum of their room sizes, or their members.
type Answers = (usize, Vec<ClusterMember>);

struct Pending {
    sum: usize,
    members: Vec<ClusterMember>,
    got: usize,
    expected: Option<usize>,
    done: Option<oneshot::Sender<Answers>>,
}

impl Pending {
    fn settle(&mut self) {
        if self.expected.is_some_and(|e| self.got >= e) {
            if let Some(done) = self.done.take() {
                let _ = done.send((self.sum, std::mem::take(&mut self.members)));
            }
        }
    }
}

/// A question on the control channel: how many members a room has (`Q`, answered with `A`), or
/// who they are (`M`, answered with `L`).
#[derive(Clone, Copy)]
enum Question {
    Size,
    Members,
}

struct Shared {
    node: [u8; NODE_LEN],
    data: Bytes,
    ctl: Bytes,
    queue: mpsc::Sender<Outbound>,
    pending: Mutex<HashMap<u64, Pending>>,
    next_req: AtomicU64,
    subscribed: AtomicBool,
    /// The stream's key (streams mode).
    stream: Bytes,
    /// Joins waiting for a replay from the history (streams mode).
    replays: Option<mpsc::Sender<stream::Replay>>,
    /// Connections that came up at least once; `Ready` is reported when all did.
    up: std::sync::atomic::AtomicUsize,
    /// Redis Cluster: where the hub's slot is served.
    router: Option<cluster::Router>,
    /// Redis Cluster in pub/sub mode: rooms whose first local member joined or last left, for
    /// the subscriptions to follow (one sharded channel per room, see [`sharded`]).
    rooms: Option<mpsc::UnboundedSender<Arc<str>>>,
    /// What the name of every room's channel starts with.
    room_prefix: Bytes,
    /// Streams mode: true once the reader has its first cursor. The publisher appends nothing
    /// before, or this process's own first publishes would be behind where its reader starts.
    reading: tokio::sync::watch::Sender<bool>,
    cancel: CancellationToken,
    events: EventSink,
    opts: RedisOptions,
    hub: Weak<Inner>,
}

/// The Redis pub/sub adapter. Install it on a hub with [`RedisAdapter::start`].
pub struct RedisAdapter(Arc<Shared>);

impl std::fmt::Debug for RedisAdapter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisAdapter")
            .field("url", &self.0.opts.url)
            .finish()
    }
}

#[derive(Debug, Clone)]
struct Target {
    addr: String,
    /// The host of the URL, without brackets: the TLS server name unless `tls.server_name` says
    /// otherwise.
    host: String,
    /// `rediss://`
    tls: bool,
    user: Option<String>,
    password: Option<String>,
}

/// Where and how the adapter's connections go: the parsed URL and, for `rediss://`, the TLS
/// connector and the server name to verify.
#[derive(Clone)]
struct Endpoint {
    target: Target,
    tls: Option<(TlsConnector, ServerName<'static>)>,
    /// The TLS server name was given (`tls.server_name`): it stays for every node of a cluster.
    fixed_name: bool,
}

impl Endpoint {
    /// The same settings for another node (of a cluster): over TLS, verified against that node's
    /// host (an IP address as `CLUSTER SLOTS` gives it, or a name) unless a server name was given.
    fn at(&self, addr: &str) -> Endpoint {
        let mut e = self.clone();
        e.target.addr = addr.to_owned();
        let host = cluster::host_of(addr)
            .trim_start_matches('[')
            .trim_end_matches(']');
        host.clone_into(&mut e.target.host);
        if let Some((_, name)) = &mut e.tls {
            if !self.fixed_name {
                if let Ok(n) = ServerName::try_from(host.to_owned()) {
                    *name = n;
                }
            }
        }
        e
    }

    fn new(target: Target, tls: Option<&ClientTlsOptions>) -> Result<Endpoint> {
        if !target.tls {
            if tls.is_some() {
                return Err(Error::InvalidArgument(
                    "TLS options were given for a redis:// URL: use rediss:// to connect over TLS"
                        .into(),
                ));
            }
            return Ok(Endpoint {
                target,
                tls: None,
                fixed_name: false,
            });
        }
        let defaults = ClientTlsOptions::default();
        let opts = tls.unwrap_or(&defaults);
        let config = client_config(opts, &[])?;
        let sni = opts
            .server_name
            .clone()
            .unwrap_or_else(|| target.host.clone());
        let name = ServerName::try_from(sni.clone())
            .map_err(|_| Error::InvalidArgument(format!("invalid TLS server name {sni:?}")))?;
        Ok(Endpoint {
            target,
            tls: Some((TlsConnector::from(config), name)),
            fixed_name: opts.server_name.is_some(),
        })
    }
}

fn parse_url(raw: &str) -> Result<Target> {
    let bad = |reason: &str| Error::InvalidUrl {
        url: raw.to_owned(),
        reason: reason.to_owned(),
    };
    let url = url::Url::parse(raw).map_err(|e| bad(&e.to_string()))?;
    let tls = match url.scheme() {
        "redis" => false,
        "rediss" => true,
        _ => return Err(bad("the scheme must be redis:// or rediss:// (TLS)")),
    };
    let host = url.host_str().ok_or_else(|| bad("no host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port().unwrap_or(6379);
    let decode = |s: &str| {
        percent_encoding::percent_decode_str(s)
            .decode_utf8_lossy()
            .into_owned()
    };
    let password = url.password().map(decode);
    let user = (!url.username().is_empty()).then(|| decode(url.username()));
    let addr = if host.contains(':') {
        format!("[{host}]:{port}")
    } else {
        format!("{host}:{port}")
    };
    Ok(Target {
        addr,
        host: host.to_owned(),
        tls,
        user,
        password,
    })
}

impl RedisAdapter {
    /// Starts relaying `hub`'s publishes through Redis and installs the adapter on it (closing
    /// any previous one). Returns at once: connections are made in the background and reported
    /// through `events` ([`AdapterEvent::Ready`] once subscribed). Must run on a tokio runtime.
    pub fn start(hub: &Hub, opts: RedisOptions, events: EventSink) -> Result<Arc<RedisAdapter>> {
        if opts.channel.is_empty() {
            return Err(Error::InvalidArgument("the channel prefix is empty".into()));
        }
        let (target, router, names) = if opts.cluster.is_empty() {
            let target = Endpoint::new(parse_url(&opts.url)?, opts.tls.as_ref())?;
            (target, None, opts.channel.clone())
        } else {
            let seeds = opts
                .cluster
                .iter()
                .map(|u| parse_url(u))
                .collect::<Result<Vec<_>>>()?;
            if seeds.iter().any(|t| t.tls != seeds[0].tls) {
                return Err(Error::InvalidArgument(
                    "the cluster's URLs mix redis:// and rediss://: use one for all".into(),
                ));
            }
            if opts.channel.contains(['{', '}']) {
                return Err(Error::InvalidArgument(
                    "with a Redis Cluster the channel prefix must not contain { or } (it becomes \
                     the hash tag that keeps the hub's names in one slot)"
                        .into(),
                ));
            }
            let names = format!("{{{}}}", opts.channel);
            let router = cluster::Router::new(
                seeds.iter().map(|t| t.addr.clone()).collect(),
                cluster::key_slot(names.as_bytes()),
            );
            let base = Endpoint::new(seeds[0].clone(), opts.tls.as_ref())?;
            (base, Some(router), names)
        };
        if let Mode::Streams(s) = &opts.mode {
            if s.history_size == 0 {
                return Err(Error::InvalidArgument("the history size is 0".into()));
            }
        }
        let (queue, rx) = mpsc::channel(opts.max_queue.max(1));
        let (rooms, rooms_rx) = if router.is_some() && opts.mode == Mode::PubSub {
            let (tx, rx) = mpsc::unbounded_channel();
            (Some(tx), Some(rx))
        } else {
            (None, None)
        };
        let (replays, replay_rx) = match opts.mode {
            Mode::Streams(_) => {
                let (tx, rx) = mpsc::channel(1024);
                (Some(tx), Some(rx))
            }
            Mode::PubSub => (None, None),
        };
        let shared = Arc::new(Shared {
            node: rand::random(),
            data: Bytes::from(format!("{names}#data")),
            ctl: Bytes::from(format!("{names}#ctl")),
            queue,
            pending: Mutex::new(HashMap::new()),
            next_req: AtomicU64::new(1),
            subscribed: AtomicBool::new(false),
            stream: Bytes::from(format!("{names}#stream")),
            replays,
            up: std::sync::atomic::AtomicUsize::new(0),
            room_prefix: sharded::room_channel(&opts.channel, ""),
            router,
            rooms,
            reading: tokio::sync::watch::channel(false).0,
            cancel: CancellationToken::new(),
            events,
            opts,
            hub: hub.downgrade(),
        });
        if let Some(rooms_rx) = rooms_rx {
            tokio::spawn(sharded::publisher(shared.clone(), target.clone(), rx));
            tokio::spawn(sharded::subscriptions(shared.clone(), target, rooms_rx));
        } else {
            tokio::spawn(publisher(shared.clone(), target.clone(), rx));
            if let Some(replay_rx) = replay_rx {
                tokio::spawn(stream::reader(shared.clone(), target.clone(), replay_rx));
            }
            tokio::spawn(subscriber(shared.clone(), target));
        }
        let adapter = Arc::new(RedisAdapter(shared.clone()));
        hub.set_adapter(Some(adapter.clone()));
        // Rooms that had members before: from now on the hub reports changes itself.
        if let Some(rooms) = &shared.rooms {
            for room in hub.room_names() {
                let _ = rooms.send(Arc::from(room));
            }
        }
        Ok(adapter)
    }

    /// True while subscribed (remote publishes arrive).
    pub fn is_subscribed(&self) -> bool {
        self.0.subscribed.load(Ordering::Relaxed)
    }
}

impl Adapter for RedisAdapter {
    fn publish(&self, room: Option<&str>, msg: &PreparedMessage, except: &[u64]) {
        let streams = self.0.replays.is_some();
        let Some(frame) = encode_data(&self.0.node, room, msg, streams.then_some(except)) else {
            return;
        };
        // A full queue (Redis down for long) drops the message for other nodes only (and, in
        // streams mode, for this one too).
        let _ = self.0.queue.try_send(Outbound {
            channel: match room {
                _ if streams => self.0.stream.clone(),
                Some(room) if self.0.rooms.is_some() => {
                    sharded::room_channel(&self.0.opts.channel, room)
                }
                _ => self.0.data.clone(),
            },
            frame,
            query: None,
            stream: streams,
            seq: 0,
        });
    }

    fn delivers_own(&self) -> bool {
        self.0.replays.is_some()
    }

    fn replay(&self, id: u64, room: &str, since: &str) -> ReplayFuture {
        let shared = self.0.clone();
        let room = room.to_owned();
        let since = since.to_owned();
        Box::pin(async move { stream::request_replay(&shared, id, room, &since).await })
    }

    fn remote_room_size(&self, room: &str) -> AdapterFuture {
        let shared = self.0.clone();
        let room = room.to_owned();
        Box::pin(async move { Ok(ask(&shared, Question::Size, &room).await?.0) })
    }

    fn remote_members(&self, room: &str) -> MembersFuture {
        let shared = self.0.clone();
        let room = room.to_owned();
        Box::pin(async move { Ok(ask(&shared, Question::Members, &room).await?.1) })
    }

    fn room_changed(&self, room: &str) {
        if let Some(rooms) = &self.0.rooms {
            let _ = rooms.send(Arc::from(room));
        }
    }

    fn node_id(&self) -> String {
        hex(&self.0.node)
    }

    fn close(&self) {
        self.0.cancel.cancel();
    }
}

/// Asks every other node about `room` and waits for all of their answers (as many as Redis says
/// heard the question) for the request timeout.
async fn ask(shared: &Arc<Shared>, question: Question, room: &str) -> Result<Answers> {
    if !shared.subscribed.load(Ordering::Relaxed) {
        return Err(Error::Adapter("not connected to Redis".into()));
    }
    let req = shared.next_req.fetch_add(1, Ordering::Relaxed);
    let (tx, rx) = oneshot::channel();
    lock(&shared.pending).insert(
        req,
        Pending {
            sum: 0,
            members: Vec::new(),
            got: 0,
            expected: None,
            done: Some(tx),
        },
    );
    let mut f = BytesMut::with_capacity(1 + NODE_LEN + 8 + room.len());
    f.put_u8(match question {
        Question::Size => b'Q',
        Question::Members => b'M',
    });
    f.put_slice(&shared.node);
    f.put_u64(req);
    f.put_slice(room.as_bytes());
    let queued =
        shared
            .queue
            .try_send(Outbound::control(shared.ctl.clone(), f.freeze(), Some(req)));
    let result = match queued {
        Err(_) => Err(Error::Adapter("the publish queue is full".into())),
        Ok(()) => match tokio::time::timeout(shared.opts.request_timeout, rx).await {
            Ok(Ok(answers)) => Ok(answers),
            Ok(Err(_)) => Err(Error::Adapter("the adapter closed".into())),
            Err(_) => Err(Error::Timeout(match question {
                Question::Size => "cluster room size (a process did not answer)",
                Question::Members => "cluster members (a process did not answer)",
            })),
        },
    };
    lock(&shared.pending).remove(&req);
    result
}

/// A relayed message: `D` (pub/sub) or `S` (stream), the node, flags (1 text, 2 a room, 4 an
/// `except` list), `u16` room length, the room, for `S` with flag 4 a `u16` count of `u64` ids
/// left out on the publishing node, then the payload. `None` when the room name is too long.
fn encode_data(
    node: &[u8; NODE_LEN],
    room: Option<&str>,
    msg: &PreparedMessage,
    except: Option<&[u64]>,
) -> Option<Bytes> {
    let payload = msg.payload();
    let room_bytes = room.map(str::as_bytes).unwrap_or_default();
    let room_len = u16::try_from(room_bytes.len()).ok()?;
    let except = except.map(|e| &e[..e.len().min(usize::from(u16::MAX))]);
    let listed = except.filter(|e| !e.is_empty());
    let mut f = BytesMut::with_capacity(
        1 + NODE_LEN + 3 + room_bytes.len() + listed.map_or(0, |e| 2 + 8 * e.len()) + payload.len(),
    );
    f.put_u8(if except.is_some() { b'S' } else { b'D' });
    f.put_slice(node);
    f.put_u8(
        u8::from(msg.is_text())
            | (u8::from(room.is_some()) << 1)
            | (u8::from(listed.is_some()) << 2),
    );
    f.put_u16(room_len);
    f.put_slice(room_bytes);
    if let Some(ids) = listed {
        f.put_u16(ids.len() as u16);
        for id in ids {
            f.put_u64(*id);
        }
    }
    f.put_slice(&payload);
    Some(f.freeze())
}

/// A decoded relayed message.
struct Data<'a> {
    node: &'a [u8],
    room: Option<&'a str>,
    except: Vec<u64>,
    text: bool,
    body: &'a [u8],
}

/// Reads a frame of [`encode_data`] with tag `tag`; `None` when malformed.
fn decode_data(tag: u8, payload: &[u8]) -> Option<Data<'_>> {
    let (t, node, rest) = split_node(payload)?;
    if t != tag || rest.len() < 3 {
        return None;
    }
    let flags = rest[0];
    let room_len = usize::from(u16::from_be_bytes([rest[1], rest[2]]));
    let room = rest.get(3..3 + room_len)?;
    let mut body = &rest[3 + room_len..];
    let room = if flags & 2 != 0 {
        Some(std::str::from_utf8(room).ok()?)
    } else {
        None
    };
    let mut except = Vec::new();
    if flags & 4 != 0 {
        let n = usize::from(u16::from_be_bytes(body.get(..2)?.try_into().ok()?));
        let ids = body.get(2..2 + 8 * n)?;
        except = ids
            .chunks_exact(8)
            .map(|c| u64::from_be_bytes(c.try_into().unwrap_or_default()))
            .collect();
        body = &body[2 + 8 * n..];
    }
    let text = flags & 1 != 0;
    if text && std::str::from_utf8(body).is_err() {
        return None;
    }
    Some(Data {
        node,
        room,
        except,
        text,
        body,
    })
}

/// Reports `Ready` once every connection of the adapter came up, and `Reconnect` when one comes
/// back after an outage (`ever`: this one came up before).
fn came_up(shared: &Shared, ever: &mut bool) {
    if *ever {
        (shared.events)(AdapterEvent::Reconnect);
        return;
    }
    *ever = true;
    let parts = if shared.replays.is_some() { 2 } else { 1 };
    if shared.up.fetch_add(1, Ordering::AcqRel) + 1 == parts {
        (shared.events)(AdapterEvent::Ready);
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `L` answer's list: `u32` count, then per member `u64` id, `u16` metadata count and per
/// entry `u16` key length, key, `u32` value length, value.
fn encode_members(f: &mut BytesMut, members: &[(u64, Vec<(String, String)>)]) {
    f.put_u32(u32::try_from(members.len()).unwrap_or(u32::MAX));
    for (id, meta) in members {
        f.put_u64(*id);
        let meta = &meta[..meta.len().min(usize::from(u16::MAX))];
        f.put_u16(meta.len() as u16);
        for (k, v) in meta {
            let k = &k.as_bytes()[..k.len().min(usize::from(u16::MAX))];
            f.put_u16(k.len() as u16);
            f.put_slice(k);
            f.put_u32(u32::try_from(v.len()).unwrap_or(u32::MAX));
            f.put_slice(v.as_bytes());
        }
    }
}

/// Reads an `L` answer's list; `None` when it is malformed (cut short, or text that is not UTF-8).
fn decode_members(node: &str, mut b: &[u8]) -> Option<Vec<ClusterMember>> {
    fn take<'a>(b: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
        let (head, rest) = (b.get(..n)?, b.get(n..)?);
        *b = rest;
        Some(head)
    }
    fn text(b: &mut &[u8], n: usize) -> Option<String> {
        String::from_utf8(take(b, n)?.to_vec()).ok()
    }
    let count = u32::from_be_bytes(take(&mut b, 4)?.try_into().ok()?);
    let mut out = Vec::new();
    for _ in 0..count {
        let id = u64::from_be_bytes(take(&mut b, 8)?.try_into().ok()?);
        let entries = u16::from_be_bytes(take(&mut b, 2)?.try_into().ok()?);
        let mut meta = Vec::with_capacity(usize::from(entries));
        for _ in 0..entries {
            let klen = u16::from_be_bytes(take(&mut b, 2)?.try_into().ok()?);
            let k = text(&mut b, usize::from(klen))?;
            let vlen = u32::from_be_bytes(take(&mut b, 4)?.try_into().ok()?);
            let v = text(&mut b, usize::try_from(vlen).ok()?)?;
            meta.push((k, v));
        }
        out.push(ClusterMember {
            node: node.to_owned(),
            id,
            meta,
            local: false,
        });
    }
    b.is_empty().then_some(out)
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Says that a TLS error came from the connection to Redis.
fn redis_tls_error(kind: TlsFailure, message: impl std::fmt::Display) -> Error {
    Error::Tls {
        kind,
        message: format!("TLS with Redis: {message}"),
    }
}

/// An I/O error of a connection to Redis; a TLS failure (a bad certificate, or an alert such as a
/// client certificate the server requires and did not get: Redis requires one by default, and
/// over TLS 1.3 the refusal comes on the first read) keeps its TLS code.
fn io_error(e: std::io::Error) -> Error {
    match classify_io(e) {
        Ok(Error::Tls { kind, message }) => redis_tls_error(kind, message),
        Ok(other) => other,
        Err(e) => Error::from(e),
    }
}

/// One connection to Redis (TCP, or TLS for `rediss://`) with its read buffer.
struct Conn {
    stream: NetStream,
    buf: BytesMut,
}

impl Conn {
    async fn open(endpoint: &Endpoint) -> Result<Conn> {
        let target = &endpoint.target;
        let tcp = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(&target.addr))
            .await
            .map_err(|_| Error::Timeout("connect to Redis"))??;
        let _ = tcp.set_nodelay(true);
        let stream = match &endpoint.tls {
            None => NetStream::Tcp(tcp),
            Some((connector, name)) => {
                let handshake = connector.connect(name.clone(), tcp);
                let tls = tokio::time::timeout(CONNECT_TIMEOUT, handshake)
                    .await
                    .map_err(|_| Error::Timeout("TLS handshake with Redis"))?
                    .map_err(|e| match classify_io(e) {
                        Ok(Error::Tls { kind, message }) => redis_tls_error(kind, message),
                        Ok(other) => other,
                        // The connection broke during the handshake (e.g. a server without TLS
                        // on that port).
                        Err(e) => {
                            redis_tls_error(TlsFailure::Handshake, format!("handshake failed: {e}"))
                        }
                    })?;
                NetStream::Tls(Box::new(tls))
            }
        };
        let mut conn = Conn {
            stream,
            buf: BytesMut::with_capacity(8 << 10),
        };
        if let Some(password) = &target.password {
            let mut out = BytesMut::new();
            match &target.user {
                Some(user) => {
                    resp::command(&mut out, &[b"AUTH", user.as_bytes(), password.as_bytes()])
                }
                None => resp::command(&mut out, &[b"AUTH", password.as_bytes()]),
            }
            conn.write(&out).await?;
            if let Value::Error(e) = conn.read().await? {
                return Err(Error::Adapter(format!("AUTH refused: {e}")));
            }
        }
        Ok(conn)
    }

    /// Opens a connection to the Redis of `endpoint`, or in a cluster to the primary serving the
    /// hub's slot.
    async fn connect(shared: &Shared, endpoint: &Endpoint) -> Result<Conn> {
        match &shared.router {
            None => Conn::open(endpoint).await,
            Some(router) => Conn::open(&endpoint.at(&router.primary(endpoint).await?)).await,
        }
    }

    /// Connects ([`Conn::connect`]) and sees Redis answer a `PING`: a proxy that accepts and then
    /// drops connections to a Redis that is down must not count as Redis being back (the backoff
    /// would restart and every attempt be reported).
    async fn open_checked(shared: &Shared, endpoint: &Endpoint) -> Result<Conn> {
        Conn::connect(shared, endpoint).await?.pinged().await
    }

    /// The connection, once Redis answered a `PING` on it.
    async fn pinged(mut self) -> Result<Conn> {
        let mut out = BytesMut::new();
        resp::command(&mut out, &[b"PING"]);
        self.write(&out).await?;
        match self.read_within(REPLY_TIMEOUT).await? {
            Value::Error(e) => Err(Error::Adapter(format!("PING refused: {e}"))),
            _ => Ok(self),
        }
    }

    /// Writes `out` whole and flushes it (TLS holds written bytes until flushed).
    async fn write(&mut self, out: &[u8]) -> Result<()> {
        self.stream.write_all(out).await.map_err(io_error)?;
        self.stream.flush().await.map_err(io_error)
    }

    /// Reads more bytes into the buffer; false when Redis closed the connection.
    async fn fill(&mut self) -> Result<bool> {
        Ok(self
            .stream
            .read_buf(&mut self.buf)
            .await
            .map_err(io_error)?
            > 0)
    }

    /// [`Conn::read`] within `limit`; a peer silent for longer is a failed connection.
    async fn read_within(&mut self, limit: Duration) -> Result<Value> {
        tokio::time::timeout(limit, self.read())
            .await
            .map_err(|_| Error::Timeout("a reply from Redis"))?
    }

    async fn read(&mut self) -> Result<Value> {
        loop {
            match resp::parse(&mut self.buf) {
                Ok(Some(v)) => return Ok(v),
                Ok(None) => {}
                Err(e) => return Err(Error::Adapter(format!("bad reply from Redis: {e}"))),
            }
            if !self.fill().await? {
                return Err(Error::ConnectionReset("Redis closed the connection".into()));
            }
        }
    }
}

/// Longest wait for a reply to a command (not a blocking read): a connection whose peer went
/// silent (a partition with no reset) fails instead of hanging.
const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Sleeps for the backoff (doubling it), or returns false when cancelled.
async fn back_off(shared: &Shared, backoff: &mut Duration) -> bool {
    let wait = *backoff;
    *backoff = (*backoff * 2).min(MAX_BACKOFF);
    tokio::select! {
        _ = shared.cancel.cancelled() => false,
        _ = tokio::time::sleep(wait) => true,
    }
}

fn report(shared: &Shared, what: &str, e: &Error, down: &mut bool) {
    if !*down {
        *down = true;
        (shared.events)(AdapterEvent::Error {
            code: e.code(),
            message: format!("{what}: {e}"),
        });
    }
}

async fn publisher(shared: Arc<Shared>, target: Endpoint, mut rx: mpsc::Receiver<Outbound>) {
    let mut backoff = MIN_BACKOFF;
    let mut down = false;
    let mut batch: Vec<Outbound> = Vec::new();
    let mut out = BytesMut::new();
    let mut next_seq: u64 = 1;
    let publish: &[u8] = if shared.router.is_some() {
        b"SPUBLISH"
    } else {
        b"PUBLISH"
    };
    let (history_size, ttl) = match &shared.opts.mode {
        Mode::Streams(s) => (
            s.history_size.to_string(),
            s.history_ttl.map(|t| t.as_millis().max(1).to_string()),
        ),
        Mode::PubSub => (String::new(), None),
    };
    if shared.replays.is_some() {
        let mut reading = shared.reading.subscribe();
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            _ = reading.wait_for(|r| *r) => {}
        }
    }
    loop {
        let opened = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            c = Conn::open_checked(&shared, &target) => c,
        };
        let mut conn = match opened {
            Ok(c) => c,
            Err(e) => {
                report(&shared, "publishing connection", &e, &mut down);
                if !back_off(&shared, &mut backoff).await {
                    return;
                }
                continue;
            }
        };
        // Up once a batch went through: a node that answers PING but refuses every command
        // (MOVED, CLUSTERDOWN, READONLY) must not reset the backoff.
        let mut wait_for_replica = shared.router.is_some();
        let failed = loop {
            // While idle, watch the connection too: a Redis that went away is noticed at once,
            // not by losing the next batch. Stream entries Redis did not take before a failure
            // are sent again first.
            if batch.is_empty() {
                let first = tokio::select! {
                    _ = shared.cancel.cancelled() => return,
                    m = rx.recv() => match m {
                        Some(m) => m,
                        None => return,
                    },
                    r = conn.fill() => match r {
                        Ok(false) => break Error::ConnectionReset("Redis closed the connection".into()),
                        Ok(true) => continue,
                        Err(e) => break e,
                    },
                };
                batch.push(first);
            }
            top_up(&mut rx, &mut batch, 512);
            out.clear();
            let mut appended = false;
            for m in &mut batch {
                if m.stream {
                    if m.seq == 0 {
                        m.seq = next_seq;
                        next_seq += 1;
                    }
                    appended = true;
                    resp::command(
                        &mut out,
                        &[
                            b"XADD",
                            &m.channel,
                            b"MAXLEN",
                            b"~",
                            history_size.as_bytes(),
                            b"*",
                            b"s",
                            &m.seq.to_be_bytes(),
                            b"d",
                            &m.frame,
                        ],
                    );
                } else {
                    resp::command(&mut out, &[publish, &m.channel, &m.frame]);
                }
            }
            let expire = ttl.as_ref().filter(|_| appended);
            if let Some(ms) = expire {
                resp::command(&mut out, &[b"PEXPIRE", &shared.stream, ms.as_bytes()]);
            }
            // In a cluster, an entry is taken once a replica has it too: one the primary had
            // alone when it failed is sent again (and read once, by its number).
            let replicated = appended && wait_for_replica;
            if replicated {
                resp::command(&mut out, &[b"WAIT", b"1", b"1000"]);
            }
            if let Err(e) = conn.write(&out).await {
                break e;
            }
            let mut error = None;
            let mut taken = 0;
            let mut refused: Option<(usize, String)> = None;
            for m in &batch {
                let reply = conn.read_within(REPLY_TIMEOUT).await;
                if let Ok(Value::Error(e)) = &reply {
                    if cluster::retryable(e) {
                        error = Some(Error::Adapter(format!("Redis: {e}")));
                        break;
                    }
                }
                if reply.is_ok() {
                    taken += 1;
                }
                match reply {
                    Ok(Value::Error(e)) if m.stream => {
                        // Refused for good (a key of another type, out of memory): not retried,
                        // reported once for the batch.
                        refused.get_or_insert((0, e)).0 += 1;
                    }
                    Ok(Value::Int(n)) => heard(&shared, m, n),
                    Ok(_) => {}
                    Err(e) => {
                        error = Some(e);
                        break;
                    }
                }
            }
            if let Some((n, e)) = refused {
                (shared.events)(AdapterEvent::Error {
                    code: "ERR_HUB_ADAPTER",
                    message: format!(
                        "Redis refused {n} message{} for the stream (lost): {e}",
                        if n == 1 { "" } else { "s" }
                    ),
                });
            }
            if error.is_none() && expire.is_some() {
                if let Err(e) = conn.read_within(REPLY_TIMEOUT).await {
                    error = Some(e);
                }
            }
            if replicated {
                if error.is_none() {
                    match conn.read_within(REPLY_TIMEOUT).await {
                        // A shard without a replica (or one more than a second behind) answers
                        // 0: the entries stay taken, and this connection stops waiting (every
                        // batch would wait the full second).
                        Ok(Value::Int(0)) => wait_for_replica = false,
                        Ok(_) => {}
                        Err(e) => error = Some(e),
                    }
                }
                // Not confirmed by a replica: all of the batch is sent again.
                if error.is_some() {
                    taken = 0;
                }
            }
            batch.drain(..taken);
            if error.is_none() {
                backoff = MIN_BACKOFF;
                down = false;
            }
            if let Some(e) = error {
                // Pub/sub publishes in flight are lost; stream entries wait for the next
                // connection (a reader drops the copy of one Redis took twice by its number).
                batch.retain(|m| m.stream);
                break e;
            }
        };
        report(&shared, "publishing connection", &failed, &mut down);
        if !back_off(&shared, &mut backoff).await {
            return;
        }
    }
}

/// Adds what else waits in the queue to `batch`, up to `max` messages.
fn top_up(rx: &mut mpsc::Receiver<Outbound>, batch: &mut Vec<Outbound>, max: usize) {
    while batch.len() < max {
        match rx.try_recv() {
            Ok(m) => batch.push(m),
            Err(_) => break,
        }
    }
}

/// `PUBLISH` (or `SPUBLISH`) of `m` reached `n` subscribers: for a question, the number of
/// answers to wait for.
fn heard(shared: &Shared, m: &Outbound, n: i64) {
    if let Some(req) = m.query {
        if let Some(p) = lock(&shared.pending).get_mut(&req) {
            // Every node heard it, this one included: it answers itself.
            p.expected = Some(usize::try_from(n).unwrap_or(0).saturating_sub(1));
            p.settle();
        }
    }
}

async fn subscriber(shared: Arc<Shared>, target: Endpoint) {
    let mut backoff = MIN_BACKOFF;
    let mut down = false;
    let mut ever = false;
    loop {
        let session = async {
            let mut conn = Conn::connect(&shared, &target).await?;
            let mut out = BytesMut::new();
            // In streams mode the data comes from the stream; only questions are published. A
            // cluster's pub/sub is sharded.
            let verb: &[u8] = if shared.router.is_some() {
                b"SSUBSCRIBE"
            } else {
                b"SUBSCRIBE"
            };
            let channels: &[&[u8]] = if shared.replays.is_some() {
                &[verb, &shared.ctl]
            } else {
                &[verb, &shared.data, &shared.ctl]
            };
            resp::command(&mut out, channels);
            conn.write(&out).await?;
            for _ in 1..channels.len() {
                match conn.read().await? {
                    Value::Array(Some(_)) => {}
                    Value::Error(e) => return Err(Error::Adapter(format!("SUBSCRIBE: {e}"))),
                    _ => return Err(Error::Adapter("unexpected SUBSCRIBE reply".into())),
                }
            }
            Ok(conn)
        };
        let opened = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            c = session => c,
        };
        let mut conn = match opened {
            Ok(c) => c,
            Err(e) => {
                report(&shared, "subscribing connection", &e, &mut down);
                if !back_off(&shared, &mut backoff).await {
                    return;
                }
                continue;
            }
        };
        backoff = MIN_BACKOFF;
        down = false;
        shared.subscribed.store(true, Ordering::Relaxed);
        came_up(&shared, &mut ever);
        let failed = loop {
            let value = tokio::select! {
                _ = shared.cancel.cancelled() => return,
                v = conn.read() => v,
            };
            match value {
                Ok(Value::Array(Some(items))) => {
                    if !on_push(&shared, items) {
                        break Error::Adapter(
                            "Redis ended the subscription (the cluster moved the hub's slot)"
                                .into(),
                        );
                    }
                }
                Ok(_) => {}
                Err(e) => break e,
            }
        };
        shared.subscribed.store(false, Ordering::Relaxed);
        report(&shared, "subscribing connection", &failed, &mut down);
        if !back_off(&shared, &mut backoff).await {
            return;
        }
    }
}

/// Handles one pushed `["message" or "smessage", channel, payload]`; malformed payloads are
/// ignored. False when Redis ended a sharded subscription (`sunsubscribe`: the slot moved).
fn on_push(shared: &Shared, items: Vec<Value>) -> bool {
    if let Some(Value::Bulk(Some(kind))) = items.first() {
        if &kind[..] == b"sunsubscribe" {
            return false;
        }
    }
    let [Value::Bulk(Some(kind)), Value::Bulk(Some(channel)), Value::Bulk(Some(payload))] =
        items.as_slice()
    else {
        return true;
    };
    if &kind[..] != b"message" && &kind[..] != b"smessage" {
        return true;
    }
    let Some(hub) = Hub::upgrade(&shared.hub) else {
        return true;
    };
    if *channel == shared.data || shared.rooms.is_some() && channel.starts_with(&shared.room_prefix)
    {
        on_data(shared, &hub, payload);
    } else if *channel == shared.ctl {
        on_ctl(shared, &hub, payload);
    }
    true
}

fn split_node(payload: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = payload.split_first()?;
    let node = rest.get(..NODE_LEN)?;
    Some((tag, node, &rest[NODE_LEN..]))
}

fn on_data(shared: &Shared, hub: &Hub, payload: &[u8]) {
    let Some(d) = decode_data(b'D', payload) else {
        return;
    };
    if d.node == shared.node {
        return;
    }
    let msg = if d.text {
        PreparedMessage::text(std::str::from_utf8(d.body).unwrap_or_default())
    } else {
        PreparedMessage::binary(d.body)
    };
    hub.deliver_local(d.room, &msg, &[]);
}

fn on_ctl(shared: &Shared, hub: &Hub, payload: &[u8]) {
    let Some((tag, node, rest)) = split_node(payload) else {
        return;
    };
    let Some(req) = rest
        .get(..8)
        .and_then(|b| <[u8; 8]>::try_from(b).ok())
        .map(u64::from_be_bytes)
    else {
        return;
    };
    match tag {
        b'Q' if node != shared.node => {
            let Ok(room) = std::str::from_utf8(&rest[8..]) else {
                return;
            };
            let mut f = BytesMut::with_capacity(1 + NODE_LEN + 16);
            f.put_u8(b'A');
            f.put_slice(node);
            f.put_u64(req);
            f.put_u64(hub.room_size(room) as u64);
            let _ = shared
                .queue
                .try_send(Outbound::control(shared.ctl.clone(), f.freeze(), None));
        }
        b'M' if node != shared.node => {
            let Ok(room) = std::str::from_utf8(&rest[8..]) else {
                return;
            };
            let members = hub.member_entries(room);
            let mut f = BytesMut::with_capacity(1 + 2 * NODE_LEN + 12 + members.len() * 16);
            f.put_u8(b'L');
            f.put_slice(node);
            f.put_u64(req);
            f.put_slice(&shared.node);
            encode_members(&mut f, &members);
            let _ = shared
                .queue
                .try_send(Outbound::control(shared.ctl.clone(), f.freeze(), None));
        }
        b'L' if node == shared.node => {
            let Some(answerer) = rest.get(8..8 + NODE_LEN) else {
                return;
            };
            let Some(members) = decode_members(&hex(answerer), &rest[8 + NODE_LEN..]) else {
                return;
            };
            if let Some(p) = lock(&shared.pending).get_mut(&req) {
                p.members.extend(members);
                p.got += 1;
                p.settle();
            }
        }
        b'A' if node == shared.node => {
            let Some(count) = rest
                .get(8..16)
                .and_then(|b| <[u8; 8]>::try_from(b).ok())
                .map(u64::from_be_bytes)
            else {
                return;
            };
            if let Some(p) = lock(&shared.pending).get_mut(&req) {
                p.sum += usize::try_from(count).unwrap_or(usize::MAX);
                p.got += 1;
                p.settle();
            }
        }
        _ => {}
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_redis_urls() {
        let t = parse_url("redis://127.0.0.1:6390").unwrap();
        assert_eq!(t.addr, "127.0.0.1:6390");
        assert_eq!(t.password, None);
        let t = parse_url("redis://:s%40cret@localhost").unwrap();
        assert_eq!(t.addr, "localhost:6379");
        assert_eq!(t.password.as_deref(), Some("s@cret"));
        assert_eq!(t.user, None);
        let t = parse_url("redis://bob:pw@[::1]:7000/0").unwrap();
        assert_eq!(t.addr, "[::1]:7000");
        assert_eq!(t.user.as_deref(), Some("bob"));
        assert!(!t.tls);
        assert_eq!(t.host, "::1");
        assert!(parse_url("http://x").is_err());
        assert!(parse_url("not a url").is_err());
    }

    #[test]
    fn parses_rediss_urls() {
        let t = parse_url("rediss://cache.example.com").unwrap();
        assert!(t.tls);
        assert_eq!(t.addr, "cache.example.com:6379");
        assert_eq!(t.host, "cache.example.com");
        let t = parse_url("rediss://:pw@127.0.0.1:6380").unwrap();
        assert!(t.tls);
        assert_eq!(t.addr, "127.0.0.1:6380");
        assert_eq!(t.host, "127.0.0.1");
        assert_eq!(t.password.as_deref(), Some("pw"));
        let t = parse_url("rediss://u:p@[::1]:7000").unwrap();
        assert_eq!(t.addr, "[::1]:7000");
        assert_eq!(t.host, "::1");
        assert!(parse_url("redis+tls://x").is_err());
    }

    #[test]
    fn tls_options_need_rediss() {
        let tls = ClientTlsOptions::default();
        let plain = parse_url("redis://127.0.0.1").unwrap();
        assert!(Endpoint::new(plain.clone(), None).unwrap().tls.is_none());
        assert!(matches!(
            Endpoint::new(plain, Some(&tls)),
            Err(Error::InvalidArgument(_))
        ));
        let secure = parse_url("rediss://127.0.0.1").unwrap();
        assert!(Endpoint::new(secure.clone(), None).unwrap().tls.is_some());
        let bad_ca = ClientTlsOptions {
            ca: vec!["not a certificate".into()],
            ..ClientTlsOptions::default()
        };
        assert!(matches!(
            Endpoint::new(secure, Some(&bad_ca)),
            Err(Error::Tls {
                kind: TlsFailure::Config,
                ..
            })
        ));
    }

    /// A handshake that fails (here: a CA that did not sign the server's certificate) is an
    /// adapter error with a TLS code, and the adapter keeps retrying.
    #[tokio::test]
    async fn reports_a_failed_tls_handshake_and_retries() {
        use crate::tls::{generate_certificate, server_config, CertificateOptions};
        let ca = generate_certificate(&CertificateOptions {
            is_ca: true,
            ..CertificateOptions::default()
        })
        .unwrap();
        let leaf = generate_certificate(&CertificateOptions {
            issuer: Some((ca.cert.clone(), ca.key.clone())),
            ..CertificateOptions::default()
        })
        .unwrap();
        let other_ca = generate_certificate(&CertificateOptions {
            is_ca: true,
            common_name: Some("another CA".into()),
            ..CertificateOptions::default()
        })
        .unwrap();
        let config = server_config(&leaf.cert, &leaf.key, &[]).unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicU64::new(0));
        let count = accepted.clone();
        tokio::spawn(async move {
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            while let Ok((tcp, _)) = listener.accept().await {
                count.fetch_add(1, Ordering::Relaxed);
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let _ = acceptor.accept(tcp).await;
                });
            }
        });
        let (tx, mut rx) = mpsc::unbounded_channel();
        let hub = Hub::default();
        let adapter = RedisAdapter::start(
            &hub,
            RedisOptions {
                url: format!("rediss://127.0.0.1:{port}"),
                tls: Some(ClientTlsOptions {
                    ca: vec![other_ca.cert],
                    webpki_roots: false,
                    ..ClientTlsOptions::default()
                }),
                ..RedisOptions::default()
            },
            Arc::new(move |e| {
                let _ = tx.send(e);
            }),
        )
        .unwrap();
        let Some(AdapterEvent::Error { code, message }) = rx.recv().await else {
            panic!("expected an error event");
        };
        assert_eq!(code, "ERR_TLS_CERT_UNKNOWN_CA", "{message}");
        assert!(message.contains("TLS with Redis"), "{message}");
        // Both connections fail, and then keep trying.
        tokio::time::timeout(Duration::from_secs(10), async {
            while accepted.load(Ordering::Relaxed) < 4 {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the adapter retries");
        assert!(!adapter.is_subscribed());
        adapter.close();
    }

    #[test]
    fn member_lists_round_trip_and_malformed_ones_are_refused() {
        let members = vec![
            (3, vec![("name".to_string(), "ann".to_string())]),
            (9, vec![]),
        ];
        let mut f = BytesMut::new();
        encode_members(&mut f, &members);
        let decoded = decode_members("ab", &f).unwrap();
        assert_eq!(decoded.len(), 2);
        assert_eq!(decoded[0].id, 3);
        assert_eq!(decoded[0].meta, members[0].1);
        assert_eq!(decoded[0].node, "ab");
        assert!(!decoded[0].local);
        assert_eq!(decoded[1].id, 9);
        // Cut anywhere, or with bytes left over, it is refused rather than misread.
        for cut in 0..f.len() {
            assert!(decode_members("ab", &f[..cut]).is_none(), "cut at {cut}");
        }
        let mut longer = f.to_vec();
        longer.push(0);
        assert!(decode_members("ab", &longer).is_none());
        // A count far larger than the bytes that follow.
        assert!(decode_members("ab", &[0xff, 0xff, 0xff, 0xff]).is_none());
    }

    #[test]
    fn malformed_relay_payloads_are_ignored() {
        let hub = Hub::default();
        let (h, d) = crate::ws::channel(1, &crate::ws::WsLimits::default());
        hub.add(h);
        let (queue, _rx) = mpsc::channel(4);
        let shared = Shared {
            node: [0; NODE_LEN],
            data: Bytes::from_static(b"d"),
            ctl: Bytes::from_static(b"c"),
            queue,
            pending: Mutex::new(HashMap::new()),
            next_req: AtomicU64::new(1),
            subscribed: AtomicBool::new(false),
            stream: Bytes::from_static(b"s"),
            replays: None,
            up: std::sync::atomic::AtomicUsize::new(0),
            router: None,
            rooms: None,
            room_prefix: Bytes::from_static(b"r#"),
            reading: tokio::sync::watch::channel(false).0,
            cancel: CancellationToken::new(),
            events: Arc::new(|_| {}),
            opts: RedisOptions::default(),
            hub: hub.downgrade(),
        };
        for bad in [
            &b""[..],
            b"D",
            b"Dxxxxxxxxxxxxxxxx",
            b"X1234567890123456\x01\x00\x00",
        ] {
            on_data(&shared, &hub, bad);
            on_ctl(&shared, &hub, bad);
        }
        // Room length past the end, and invalid UTF-8 text.
        let mut f = vec![b'D'];
        f.extend_from_slice(&[1; NODE_LEN]);
        f.extend_from_slice(&[3, 0xff, 0xff]);
        on_data(&shared, &hub, &f);
        let mut f = vec![b'D'];
        f.extend_from_slice(&[1; NODE_LEN]);
        f.extend_from_slice(&[1, 0, 0, 0xff]);
        on_data(&shared, &hub, &f);
        assert!(d.shared.tx.try_recv().is_err());
        // A valid one from another node is delivered; our own echo is not.
        let mut f = vec![b'D'];
        f.extend_from_slice(&[1; NODE_LEN]);
        f.extend_from_slice(&[1, 0, 0]);
        f.extend_from_slice(b"hi");
        on_data(&shared, &hub, &f);
        assert!(d.shared.tx.try_recv().is_ok());
        f[1..=NODE_LEN].copy_from_slice(&[0; NODE_LEN]);
        on_data(&shared, &hub, &f);
        assert!(d.shared.tx.try_recv().is_err());
    }
}

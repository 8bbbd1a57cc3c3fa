//! Redis Cluster in pub/sub mode: one sharded channel per room, spread over the shards.
//!
//! A room's messages go to the channel `<prefix>#r#<room>`, whose slot comes from the room's
//! name (or from a `{tag}` in it, which keeps rooms that share the tag on one shard). Publishes
//! and broadcasts to everyone (`{prefix}#data`) and the questions of `{prefix}#ctl` keep the
//! hub's own slot.
//!
//! **Publishing**: one connection per primary, made when first needed. A batch from the queue is
//! split by the primary serving each message's slot (from a slot map fetched with `CLUSTER
//! SLOTS`) and pipelined to each, so a room's messages keep their order. A `MOVED` or another
//! redirection refreshes the map and sends the refused messages again; messages for a primary
//! that cannot be reached wait (up to `maxQueue`) while that primary backs off; a connection
//! that fails loses the messages in flight on it, as pub/sub does.
//!
//! **Subscribing**: the hub tells the adapter when a room gets its first local member or loses
//! its last ([`super::super::Adapter::room_changed`]). A manager task keeps the set of channels
//! this process wants and which primary each is subscribed on; one task per primary holds a
//! connection with `SSUBSCRIBE` for its channels. When a primary fails, or Redis ends a
//! subscription because the slot moved (`sunsubscribe`), or refuses one (`MOVED`), the manager
//! asks for the slot map again (from 50 ms apart, backing off to 250 ms, until all is well) and
//! subscribes each channel of the lost shard, one at a time, where its slot now lives. Pub/sub
//! keeps nothing meanwhile: what a room's channel carried while it was not subscribed is lost,
//! as is what other processes publish to a room between its first local join and the
//! subscription's confirmation.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use tokio::sync::mpsc;

use super::cluster::{self, SlotMap};
use super::{
    came_up, heard, on_push, report, top_up, Conn, Endpoint, Outbound, Shared, MIN_BACKOFF,
    REPLY_TIMEOUT,
};
use crate::error::{Error, Result};
use crate::hub::resp::{self, Value};
use crate::hub::Hub;

/// Longest wait between two slot-map requests while a subscription is down. Short: pub/sub keeps
/// nothing for a process that is not subscribed, so the sooner it follows a failover the less
/// it misses (and it should be back before the publishers, which hold what they could not send).
const REFRESH_MAX: std::time::Duration = std::time::Duration::from_millis(250);

/// The channel of `room`'s messages.
pub(super) fn room_channel(prefix: &str, room: &str) -> Bytes {
    Bytes::from(format!("{prefix}#r#{room}"))
}

/// Opens a connection to `addr` and sees it answer `PING`.
async fn open_at(base: &Endpoint, addr: &str) -> Result<Conn> {
    Conn::open(&base.at(addr)).await?.pinged().await
}

/// Sends the queue's messages, each to the primary serving its channel's slot. Messages for a
/// primary that cannot be reached (or a slot the map gives to none) wait, up to `maxQueue`, while
/// that primary backs off; the others go on.
pub(super) async fn publisher(
    shared: Arc<Shared>,
    base: Endpoint,
    mut rx: mpsc::Receiver<Outbound>,
) {
    let Some(router) = shared.router.as_ref() else {
        return;
    };
    let mut map: Option<SlotMap> = None;
    // Not before this instant may the map be asked for again.
    let mut next_refresh = Instant::now();
    let mut conns: HashMap<String, Conn> = HashMap::new();
    let mut blocked: HashMap<String, Blocked> = HashMap::new();
    let mut down = false;
    let mut batch: Vec<Outbound> = Vec::new();
    let held_max = shared.opts.max_queue.max(1);
    loop {
        // Wait for new messages, or for the first held one's primary to be tried again (a
        // primary whose backoff is over and has nothing held does not count; one long over is
        // forgotten, e.g. a primary that failed over).
        let now = Instant::now();
        blocked.retain(|_, b| b.until + super::MAX_BACKOFF * 2 > now);
        let retry = (!batch.is_empty()).then(|| {
            if map.is_none() {
                next_refresh
            } else {
                blocked
                    .values()
                    .map(|b| b.until)
                    .filter(|&until| until > now)
                    .min()
                    .unwrap_or(now)
            }
        });
        if batch.is_empty() || retry.is_some_and(|at| at > Instant::now()) {
            tokio::select! {
                _ = shared.cancel.cancelled() => return,
                m = rx.recv() => match m {
                    Some(m) => batch.push(m),
                    None => return,
                },
                () = async {
                    match retry {
                        Some(at) => tokio::time::sleep_until(at.into()).await,
                        None => std::future::pending().await,
                    }
                } => {}
            }
        }
        let max = batch.len() + 512;
        top_up(&mut rx, &mut batch, max);
        if map.is_none() && Instant::now() >= next_refresh {
            next_refresh = Instant::now() + REFRESH_MAX;
            let fetched = tokio::select! {
                _ = shared.cancel.cancelled() => return,
                r = router.slots(&base) => r,
            };
            match fetched {
                Ok(ranges) => map = Some(SlotMap(ranges)),
                Err(e) => report(&shared, "publishing connection", &e, &mut down),
            }
        }
        let Some(m) = map.as_ref() else {
            continue;
        };
        let sent = send_batch(&shared, &base, m, &mut conns, &mut blocked, &mut batch);
        let result = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            r = sent => r,
        };
        match result {
            // (A primary still backing off keeps the outage reported once.)
            Ok(()) => down = down && !blocked.is_empty(),
            Err(e) => {
                report(&shared, "publishing connection", &e, &mut down);
                map = None;
            }
        }
        // What waits is bounded like the queue: the oldest go first.
        if batch.len() > held_max {
            let dropped = batch.len() - held_max;
            batch.drain(..dropped);
            (shared.events)(super::AdapterEvent::Error {
                code: "ERR_HUB_ADAPTER",
                message: format!(
                    "{dropped} messages for an unreachable Redis Cluster primary were dropped \
                     (maxQueue)"
                ),
            });
        }
    }
}

/// A primary that could not be reached: tried again after `until`, waiting twice as long after
/// each failure.
struct Blocked {
    until: Instant,
    wait: std::time::Duration,
}

/// Sends `batch` grouped by primary. What was sent leaves the batch; what a redirection, a
/// failed connection attempt or a primary in its backoff refused stays for a later try (an error
/// makes the caller ask for the slot map again); what a connection lost in flight is dropped.
async fn send_batch(
    shared: &Shared,
    base: &Endpoint,
    map: &SlotMap,
    conns: &mut HashMap<String, Conn>,
    blocked: &mut HashMap<String, Blocked>,
    batch: &mut Vec<Outbound>,
) -> Result<()> {
    let mut groups: Vec<(&str, Vec<usize>)> = Vec::new();
    let mut keep = vec![false; batch.len()];
    let mut first_error = None;
    let now = Instant::now();
    for (i, m) in batch.iter().enumerate() {
        let Some(addr) = map.owner(&m.channel) else {
            keep[i] = true;
            first_error.get_or_insert_with(|| {
                Error::Adapter(format!(
                    "Redis Cluster: no primary serves slot {}",
                    cluster::key_slot(&m.channel)
                ))
            });
            continue;
        };
        if blocked.get(addr).is_some_and(|b| b.until > now) {
            keep[i] = true;
            continue;
        }
        match groups.iter_mut().find(|(a, _)| *a == addr) {
            Some((_, idx)) => idx.push(i),
            None => groups.push((addr, vec![i])),
        }
    }
    let mut out = BytesMut::new();
    for (addr, idx) in &groups {
        let (refused, error, broken) =
            publish_to(shared, base, conns, addr, batch, idx, &mut out).await;
        for i in refused {
            keep[i] = true;
        }
        match error {
            None => {
                blocked.remove(*addr);
            }
            // A redirection: the primary is fine, the map is old.
            Some(e) if !broken => {
                first_error.get_or_insert(e);
            }
            Some(e) => {
                conns.remove(*addr);
                let b = blocked.entry((*addr).to_owned()).or_insert(Blocked {
                    until: now,
                    wait: MIN_BACKOFF / 2,
                });
                b.wait = (b.wait * 2).min(super::MAX_BACKOFF);
                b.until = Instant::now() + b.wait;
                first_error.get_or_insert(e);
            }
        }
    }
    let mut k = keep.into_iter();
    batch.retain(|_| k.next().unwrap_or(false));
    first_error.map_or(Ok(()), Err)
}

/// Publishes the messages `idx` of `batch` on the connection to `addr` (opened if needed).
/// Returns the ones to send again (refused by a redirection, or not sent because the connection
/// could not be made; those lost in flight are not), the error, if any, and whether the
/// connection failed (rather than Redis redirecting some messages).
async fn publish_to(
    shared: &Shared,
    base: &Endpoint,
    conns: &mut HashMap<String, Conn>,
    addr: &str,
    batch: &[Outbound],
    idx: &[usize],
    out: &mut BytesMut,
) -> (Vec<usize>, Option<Error>, bool) {
    if !conns.contains_key(addr) {
        match open_at(base, addr).await {
            Ok(c) => {
                conns.insert(addr.to_owned(), c);
            }
            Err(e) => return (idx.to_vec(), Some(e), true),
        }
    }
    let Some(conn) = conns.get_mut(addr) else {
        return (Vec::new(), None, false);
    };
    out.clear();
    for &i in idx {
        let m = &batch[i];
        resp::command(out, &[b"SPUBLISH", &m.channel, &m.frame]);
    }
    if let Err(e) = conn.write(out).await {
        return (Vec::new(), Some(e), true);
    }
    // Every reply is read: one refused message does not mean the ones after it were.
    let mut refused = Vec::new();
    let mut error = None;
    for &i in idx {
        match conn.read_within(REPLY_TIMEOUT).await {
            Ok(Value::Error(e)) if cluster::retryable(&e) => {
                refused.push(i);
                error.get_or_insert_with(|| Error::Adapter(format!("Redis ({addr}): {e}")));
            }
            Ok(Value::Int(n)) => heard(shared, &batch[i], n),
            Ok(_) => {}
            Err(e) => return (refused, Some(e), true),
        }
    }
    (refused, error, false)
}

/// What a shard's task tells the manager, with the shard's generation (a shard dropped and made
/// again for the same primary is a new one: reports of the old one are ignored).
enum Report {
    /// Connected, and every subscription asked for up to the `n`th command is confirmed.
    Up(String, u64, u64),
    /// Its connection failed.
    Down(String, u64, Error),
    /// Redis ended (`sunsubscribe`) or redirected (`MOVED`, ...) the subscription to a channel.
    Lost(String, u64, Bytes),
}

enum Command {
    Subscribe(Bytes),
    Unsubscribe(Bytes),
}

struct Shard {
    commands: mpsc::UnboundedSender<Command>,
    generation: u64,
    /// Connected (its last report was `Up`, not `Down`).
    up: bool,
    /// Commands sent to it, and how many of them its last `Up` covered.
    sent: u64,
    confirmed: u64,
    /// Channels assigned to it.
    count: usize,
}

impl Shard {
    fn send(&mut self, c: Command) {
        self.sent += 1;
        let _ = self.commands.send(c);
    }
}

/// Send a `PING` on a subscribing connection that was quiet this long; one that stays silent for
/// [`REPLY_TIMEOUT`] more has failed (a primary gone without a reset).
const KEEPALIVE: std::time::Duration = std::time::Duration::from_secs(10);

/// Keeps this process subscribed to the hub's channels and to the channel of each room with a
/// local member, each on the primary serving its slot. `rooms` carries the names of rooms that
/// changed ([`super::super::Adapter::room_changed`]).
pub(super) async fn subscriptions(
    shared: Arc<Shared>,
    base: Endpoint,
    mut rooms: mpsc::UnboundedReceiver<Arc<str>>,
) {
    let Some(router) = shared.router.as_ref() else {
        return;
    };
    let (reports_tx, mut reports) = mpsc::unbounded_channel();
    // Channel -> the primary it is subscribed on ("" until assigned).
    let mut wanted: HashMap<Bytes, String> = HashMap::new();
    wanted.insert(shared.data.clone(), String::new());
    wanted.insert(shared.ctl.clone(), String::new());
    let mut shards: HashMap<String, Shard> = HashMap::new();
    let mut generations = 0u64;
    let mut map: Option<SlotMap> = None;
    let mut refresh_at = Some(Instant::now());
    let mut backoff = MIN_BACKOFF;
    // `down`: an error was reported; `outage`: a connection failed since all was last up.
    let (mut down, mut ever, mut outage) = (false, false, false);
    loop {
        let due = refresh_at.map(|at| at.max(Instant::now()));
        tokio::select! {
            _ = shared.cancel.cancelled() => return,
            Some(room) = rooms.recv() => {
                let Some(hub) = Hub::upgrade(&shared.hub) else { return };
                let channel = room_channel(&shared.opts.channel, &room);
                if hub.room_size(&room) > 0 {
                    wanted.entry(channel).or_default();
                } else if let Some(addr) = wanted.remove(&channel) {
                    if let Some(shard) = shards.get_mut(&addr) {
                        shard.send(Command::Unsubscribe(channel));
                        shard.count -= 1;
                    }
                }
            }
            Some(r) = reports.recv() => match r {
                Report::Up(addr, generation, n) => {
                    if let Some(s) = shards.get_mut(&addr).filter(|s| s.generation == generation) {
                        s.up = true;
                        s.confirmed = n;
                    }
                }
                Report::Down(addr, generation, e) => {
                    if let Some(s) = shards.get_mut(&addr).filter(|s| s.generation == generation) {
                        s.up = false;
                        outage = true;
                        shared.subscribed.store(false, std::sync::atomic::Ordering::Relaxed);
                        report(&shared, "subscribing connection", &e, &mut down);
                        refresh_at.get_or_insert_with(|| Instant::now() + backoff);
                    }
                }
                Report::Lost(addr, generation, channel) => {
                    let current = shards.get(&addr).is_some_and(|s| s.generation == generation);
                    if let Some(assigned) = wanted.get_mut(&channel).filter(|a| current && **a == addr) {
                        assigned.clear();
                        if let Some(s) = shards.get_mut(&addr) {
                            s.count -= 1;
                        }
                        // Not assigned again before the map is asked for anew: the old map
                        // sends it back where it was refused.
                        map = None;
                        refresh_at.get_or_insert_with(|| Instant::now() + backoff);
                    }
                }
            },
            () = async {
                match due {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            } => {
                let fetched = tokio::select! {
                    _ = shared.cancel.cancelled() => return,
                    r = router.slots(&base) => r,
                };
                match fetched {
                    Ok(ranges) => map = Some(SlotMap(ranges)),
                    Err(e) => {
                        outage = true;
                        report(&shared, "subscribing connection", &e, &mut down);
                    }
                }
                refresh_at = None;
            }
        }
        if let Some(m) = &map {
            assign(
                &shared,
                &base,
                m,
                &mut wanted,
                &mut shards,
                &reports_tx,
                &mut generations,
            );
        }
        shards.retain(|_, s| s.count > 0);
        let placed = wanted.values().all(|a| shards.get(a).is_some_and(|s| s.up));
        // Subscribed: every channel placed on a shard that is up and confirmed what it was asked.
        let confirmed = placed
            && wanted
                .values()
                .all(|a| shards.get(a).is_some_and(|s| s.confirmed == s.sent));
        if confirmed {
            backoff = MIN_BACKOFF;
            if !ever || outage {
                shared
                    .subscribed
                    .store(true, std::sync::atomic::Ordering::Relaxed);
                // Ready the first time, Reconnect after an outage.
                came_up(&shared, &mut ever);
            }
            outage = false;
            down = false;
        } else if !placed && refresh_at.is_none() {
            // A shard is down or a channel has nowhere to go: ask for the map again until the
            // cluster has moved the slots (a replica promoted).
            refresh_at = Some(Instant::now() + backoff);
            backoff = (backoff * 2).min(REFRESH_MAX);
        }
    }
}

/// Moves every wanted channel to the primary that serves its slot, starting the shard tasks
/// that are needed.
fn assign(
    shared: &Arc<Shared>,
    base: &Endpoint,
    map: &SlotMap,
    wanted: &mut HashMap<Bytes, String>,
    shards: &mut HashMap<String, Shard>,
    reports: &mpsc::UnboundedSender<Report>,
    generations: &mut u64,
) {
    for (channel, assigned) in wanted.iter_mut() {
        let Some(owner) = map.owner(channel) else {
            continue;
        };
        if assigned == owner {
            continue;
        }
        if let Some(old) = shards.get_mut(assigned.as_str()) {
            old.send(Command::Unsubscribe(channel.clone()));
            old.count -= 1;
        }
        let shard = shards.entry(owner.to_owned()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            *generations += 1;
            tokio::spawn(shard(
                shared.clone(),
                base.at(owner),
                (owner.to_owned(), *generations),
                rx,
                reports.clone(),
            ));
            Shard {
                commands: tx,
                generation: *generations,
                up: false,
                sent: 0,
                confirmed: 0,
                count: 0,
            }
        });
        shard.send(Command::Subscribe(channel.clone()));
        shard.count += 1;
        owner.clone_into(assigned);
    }
}

/// Holds one primary's subscriptions: connects, subscribes to its channels one by one, delivers
/// what arrives, and follows the manager's commands; ends when the manager drops it.
async fn shard(
    shared: Arc<Shared>,
    endpoint: Endpoint,
    (addr, generation): (String, u64),
    mut commands: mpsc::UnboundedReceiver<Command>,
    reports: mpsc::UnboundedSender<Report>,
) {
    let mut set: HashSet<Bytes> = HashSet::new();
    // Commands taken from the manager (`Up` says how many its confirmation covers).
    let mut taken = 0u64;
    let apply = |set: &mut HashSet<Bytes>, c: Command| match c {
        Command::Subscribe(ch) => {
            set.insert(ch);
        }
        Command::Unsubscribe(ch) => {
            set.remove(&ch);
        }
    };
    let mut backoff = MIN_BACKOFF;
    loop {
        loop {
            match commands.try_recv() {
                Ok(c) => {
                    taken += 1;
                    apply(&mut set, c);
                }
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return,
            }
        }
        // Commands written and not yet answered, in order (true: SSUBSCRIBE, false:
        // SUNSUBSCRIBE): an error reply names no channel, and Redis's own `sunsubscribe` (the
        // slot moved) looks like the answer to ours.
        let mut pending: VecDeque<(bool, Bytes)> = VecDeque::new();
        let opened = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            c = async {
                let mut conn = Conn::open(&endpoint).await?.pinged().await?;
                let mut out = BytesMut::new();
                for ch in &set {
                    resp::command(&mut out, &[b"SSUBSCRIBE", ch]);
                    pending.push_back((true, ch.clone()));
                }
                if !out.is_empty() {
                    conn.write(&out).await?;
                }
                Ok::<_, Error>(conn)
            } => c,
        };
        let failed = match opened {
            Err(e) => e,
            Ok(mut conn) => {
                let mut out = BytesMut::new();
                let mut reported = None;
                let mut last_read = Instant::now();
                let mut keepalive = tokio::time::interval(KEEPALIVE);
                keepalive.tick().await;
                loop {
                    // Up once every subscription asked for is confirmed.
                    if reported != Some(taken) && !pending.iter().any(|(sub, _)| *sub) {
                        reported = Some(taken);
                        backoff = MIN_BACKOFF;
                        let _ = reports.send(Report::Up(addr.clone(), generation, taken));
                    }
                    out.clear();
                    tokio::select! {
                        _ = shared.cancel.cancelled() => return,
                        c = commands.recv() => {
                            let Some(c) = c else { return };
                            taken += 1;
                            match c {
                                Command::Subscribe(ch) => {
                                    if set.insert(ch.clone()) {
                                        resp::command(&mut out, &[b"SSUBSCRIBE", &ch]);
                                        pending.push_back((true, ch));
                                    }
                                }
                                Command::Unsubscribe(ch) => {
                                    if set.remove(&ch) {
                                        resp::command(&mut out, &[b"SUNSUBSCRIBE", &ch]);
                                        pending.push_back((false, ch));
                                    }
                                }
                            }
                        }
                        _ = keepalive.tick() => {
                            if last_read.elapsed() > KEEPALIVE + REPLY_TIMEOUT {
                                break Error::Timeout("a reply from Redis");
                            }
                            if last_read.elapsed() >= KEEPALIVE {
                                // Allowed while subscribed; answered with a `pong` push.
                                resp::command(&mut out, &[b"PING"]);
                            }
                        }
                        v = conn.read() => {
                            last_read = Instant::now();
                            match v {
                                Ok(Value::Array(Some(items))) => {
                                    on_shard_push(&shared, &addr, generation, &mut set, &mut pending, items, &reports);
                                }
                                Ok(Value::Error(e)) => {
                                    let refused = pending.pop_front();
                                    if !cluster::retryable(&e) {
                                        break Error::Adapter(format!("Redis ({addr}) refused a subscription: {e}"));
                                    }
                                    // The slot is served elsewhere, or not right now: the manager
                                    // asks for the map again and subscribes it where it belongs.
                                    if let Some((true, ch)) = refused {
                                        set.remove(&ch);
                                        let _ = reports.send(Report::Lost(addr.clone(), generation, ch));
                                    }
                                }
                                Ok(_) => {}
                                Err(e) => break e,
                            }
                        }
                    }
                    if !out.is_empty() {
                        if let Err(e) = conn.write(&out).await {
                            break e;
                        }
                    }
                }
            }
        };
        let _ = reports.send(Report::Down(addr.clone(), generation, failed));
        // Wait out the backoff, following commands meanwhile.
        let wait = backoff;
        backoff = (backoff * 2).min(super::MAX_BACKOFF);
        let until = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                _ = shared.cancel.cancelled() => return,
                () = tokio::time::sleep_until(until) => break,
                c = commands.recv() => match c {
                    Some(c) => {
                        taken += 1;
                        apply(&mut set, c);
                    }
                    None => return,
                },
            }
        }
    }
}

/// A push on a shard's connection: a confirmation, a subscription Redis ended, or a message.
fn on_shard_push(
    shared: &Shared,
    addr: &str,
    generation: u64,
    set: &mut HashSet<Bytes>,
    pending: &mut VecDeque<(bool, Bytes)>,
    items: Vec<Value>,
    reports: &mpsc::UnboundedSender<Report>,
) {
    let Some(Value::Bulk(Some(kind))) = items.first() else {
        return;
    };
    let channel = match items.get(1) {
        Some(Value::Bulk(Some(c))) => c.clone(),
        _ => Bytes::new(),
    };
    match &kind[..] {
        b"ssubscribe" => {
            if pending
                .front()
                .is_some_and(|(sub, c)| *sub && *c == channel)
            {
                pending.pop_front();
            }
        }
        b"sunsubscribe" => {
            if pending
                .front()
                .is_some_and(|(sub, c)| !*sub && *c == channel)
            {
                // The answer to ours.
                pending.pop_front();
            } else if set.remove(&channel) {
                // Redis ended it: the slot moved.
                let _ = reports.send(Report::Lost(addr.to_owned(), generation, channel));
            }
        }
        b"pong" => {}
        _ => {
            on_push(shared, items);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rooms_hash_over_the_slots_unless_they_share_a_tag() {
        let slots: HashSet<u16> = (0..32)
            .map(|k| cluster::key_slot(&room_channel("hs", &format!("room-{k}"))))
            .collect();
        assert!(slots.len() > 16);
        assert_eq!(
            cluster::key_slot(&room_channel("hs", "game{42}:chat")),
            cluster::key_slot(&room_channel("hs", "game{42}:moves"))
        );
        let map = SlotMap(vec![(0, 16_383, "a:1".into())]);
        assert_eq!(map.owner(&room_channel("hs", "x")), Some("a:1"));
    }
}

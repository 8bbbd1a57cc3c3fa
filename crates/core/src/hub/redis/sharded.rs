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
//! redirection refreshes the map and sends the refused message and those behind it again; a
//! connection that fails loses the messages in flight on it, as pub/sub does.
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
    back_off, came_up, heard, on_push, report, top_up, Conn, Endpoint, Outbound, Shared,
    MIN_BACKOFF, REPLY_TIMEOUT,
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

/// Sends the queue's messages, each to the primary serving its channel's slot.
pub(super) async fn publisher(
    shared: Arc<Shared>,
    base: Endpoint,
    mut rx: mpsc::Receiver<Outbound>,
) {
    let Some(router) = shared.router.as_ref() else {
        return;
    };
    let mut map: Option<SlotMap> = None;
    let mut conns: HashMap<String, Conn> = HashMap::new();
    let mut backoff = MIN_BACKOFF;
    let mut down = false;
    let mut batch: Vec<Outbound> = Vec::new();
    loop {
        if batch.is_empty() {
            tokio::select! {
                _ = shared.cancel.cancelled() => return,
                m = rx.recv() => batch.extend(m),
            }
            if batch.is_empty() {
                return;
            }
        }
        top_up(&mut rx, &mut batch);
        let sent = async {
            if map.is_none() {
                map = Some(SlotMap(router.slots(&base).await?));
            }
            let Some(m) = map.as_ref() else {
                return Ok(());
            };
            send_batch(&shared, &base, m, &mut conns, &mut batch).await
        };
        let result = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            r = sent => r,
        };
        match result {
            Ok(()) => {
                backoff = MIN_BACKOFF;
                down = false;
            }
            Err(e) => {
                report(&shared, "publishing connection", &e, &mut down);
                map = None;
                if !back_off(&shared, &mut backoff).await {
                    return;
                }
            }
        }
    }
}

/// Sends `batch` grouped by primary. What was sent leaves the batch; what a redirection or a
/// failed connection attempt refused stays for the next try (after the error, which makes the
/// caller fetch the slot map again); what a connection lost in flight is dropped.
async fn send_batch(
    shared: &Shared,
    base: &Endpoint,
    map: &SlotMap,
    conns: &mut HashMap<String, Conn>,
    batch: &mut Vec<Outbound>,
) -> Result<()> {
    let mut groups: Vec<(String, Vec<usize>)> = Vec::new();
    for (i, m) in batch.iter().enumerate() {
        let Some(addr) = map.owner(&m.channel) else {
            return Err(Error::Adapter(format!(
                "Redis Cluster: no primary serves slot {}",
                cluster::key_slot(&m.channel)
            )));
        };
        match groups.iter_mut().find(|(a, _)| a == addr) {
            Some((_, idx)) => idx.push(i),
            None => groups.push((addr.to_owned(), vec![i])),
        }
    }
    let mut keep = vec![false; batch.len()];
    let mut first_error = None;
    let mut out = BytesMut::new();
    for (addr, idx) in &groups {
        let (taken, error, retry) =
            publish_to(shared, base, conns, addr, batch, idx, &mut out).await;
        if let Some(e) = error {
            conns.remove(addr);
            if retry {
                for &i in &idx[taken..] {
                    keep[i] = true;
                }
            }
            first_error.get_or_insert(e);
        }
    }
    let mut k = keep.into_iter();
    batch.retain(|_| k.next().unwrap_or(false));
    first_error.map_or(Ok(()), Err)
}

/// Publishes the messages `idx` of `batch` on the connection to `addr` (opened if needed).
/// Returns how many went through, the error that stopped the rest, and whether the rest may be
/// sent again (they were refused, not lost in flight).
async fn publish_to(
    shared: &Shared,
    base: &Endpoint,
    conns: &mut HashMap<String, Conn>,
    addr: &str,
    batch: &[Outbound],
    idx: &[usize],
    out: &mut BytesMut,
) -> (usize, Option<Error>, bool) {
    if !conns.contains_key(addr) {
        match open_at(base, addr).await {
            Ok(c) => {
                conns.insert(addr.to_owned(), c);
            }
            Err(e) => return (0, Some(e), true),
        }
    }
    let Some(conn) = conns.get_mut(addr) else {
        return (0, None, false);
    };
    out.clear();
    for &i in idx {
        let m = &batch[i];
        resp::command(out, &[b"SPUBLISH", &m.channel, &m.frame]);
    }
    if let Err(e) = conn.write(out).await {
        return (0, Some(e), false);
    }
    for (k, &i) in idx.iter().enumerate() {
        match conn.read_within(REPLY_TIMEOUT).await {
            Ok(Value::Error(e)) if cluster::retryable(&e) => {
                return (
                    k,
                    Some(Error::Adapter(format!("Redis ({addr}): {e}"))),
                    true,
                );
            }
            Ok(Value::Int(n)) => heard(shared, &batch[i], n),
            Ok(_) => {}
            Err(e) => return (k, Some(e), false),
        }
    }
    (idx.len(), None, false)
}

/// What a shard's task tells the manager.
enum Report {
    /// Connected and subscribed to its channels.
    Up(String),
    /// Its connection failed.
    Down(String, Error),
    /// Redis ended (`sunsubscribe`) or refused (`MOVED`) the subscription to a channel.
    Lost(String, Bytes),
}

enum Command {
    Subscribe(Bytes),
    Unsubscribe(Bytes),
}

struct Shard {
    commands: mpsc::UnboundedSender<Command>,
    up: bool,
    /// Channels assigned to it.
    count: usize,
}

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
                        let _ = shard.commands.send(Command::Unsubscribe(channel));
                        shard.count -= 1;
                    }
                }
            }
            Some(r) = reports.recv() => match r {
                Report::Up(addr) => {
                    if let Some(s) = shards.get_mut(&addr) {
                        s.up = true;
                    }
                }
                // (From a shard still in use: one whose channels all moved away is ending.)
                Report::Down(addr, e) => if let Some(s) = shards.get_mut(&addr) {
                    s.up = false;
                    outage = true;
                    shared.subscribed.store(false, std::sync::atomic::Ordering::Relaxed);
                    report(&shared, "subscribing connection", &e, &mut down);
                    refresh_at.get_or_insert_with(|| Instant::now() + backoff);
                },
                Report::Lost(addr, channel) => {
                    if let Some(assigned) = wanted.get_mut(&channel).filter(|a| **a == addr) {
                        assigned.clear();
                        if let Some(s) = shards.get_mut(&addr) {
                            s.count -= 1;
                        }
                    }
                    // Not assigned again before the map is asked for anew: the old map sends
                    // it back where it was refused.
                    map = None;
                    refresh_at.get_or_insert_with(|| Instant::now() + backoff);
                }
            },
            () = async {
                match due {
                    Some(at) => tokio::time::sleep_until(at.into()).await,
                    None => std::future::pending().await,
                }
            } => {
                match router.slots(&base).await {
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
            assign(&shared, &base, m, &mut wanted, &mut shards, &reports_tx);
        }
        shards.retain(|_, s| s.count > 0);
        // All subscribed: every channel assigned to a shard that is up.
        let all_up = wanted.values().all(|a| shards.get(a).is_some_and(|s| s.up));
        if all_up {
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
        } else if refresh_at.is_none() {
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
) {
    for (channel, assigned) in wanted.iter_mut() {
        let Some(owner) = map.owner(channel) else {
            continue;
        };
        if assigned == owner {
            continue;
        }
        if let Some(old) = shards.get_mut(assigned.as_str()) {
            let _ = old.commands.send(Command::Unsubscribe(channel.clone()));
            old.count -= 1;
        }
        let shard = shards.entry(owner.to_owned()).or_insert_with(|| {
            let (tx, rx) = mpsc::unbounded_channel();
            tokio::spawn(shard(
                shared.clone(),
                base.at(owner),
                owner.to_owned(),
                rx,
                reports.clone(),
            ));
            Shard {
                commands: tx,
                up: false,
                count: 0,
            }
        });
        let _ = shard.commands.send(Command::Subscribe(channel.clone()));
        shard.count += 1;
        owner.clone_into(assigned);
    }
}

/// Holds one primary's subscriptions: connects, subscribes to its channels one by one, delivers
/// what arrives, and follows the manager's commands; ends when the manager drops it.
async fn shard(
    shared: Arc<Shared>,
    endpoint: Endpoint,
    addr: String,
    mut commands: mpsc::UnboundedReceiver<Command>,
    reports: mpsc::UnboundedSender<Report>,
) {
    let mut set: HashSet<Bytes> = HashSet::new();
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
                Ok(c) => apply(&mut set, c),
                Err(mpsc::error::TryRecvError::Empty) => break,
                Err(mpsc::error::TryRecvError::Disconnected) => return,
            }
        }
        // SSUBSCRIBE sent and not yet confirmed, in order: an error reply names no channel.
        let mut asked: VecDeque<Bytes> = VecDeque::new();
        let opened = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            c = async {
                let mut conn = Conn::open(&endpoint).await?;
                let mut out = BytesMut::new();
                for ch in &set {
                    resp::command(&mut out, &[b"SSUBSCRIBE", ch]);
                    asked.push_back(ch.clone());
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
                let _ = reports.send(Report::Up(addr.clone()));
                backoff = MIN_BACKOFF;
                let mut out = BytesMut::new();
                loop {
                    tokio::select! {
                        _ = shared.cancel.cancelled() => return,
                        c = commands.recv() => {
                            let Some(c) = c else { return };
                            out.clear();
                            match c {
                                Command::Subscribe(ch) => {
                                    if set.insert(ch.clone()) {
                                        resp::command(&mut out, &[b"SSUBSCRIBE", &ch]);
                                        asked.push_back(ch);
                                    }
                                }
                                Command::Unsubscribe(ch) => {
                                    if set.remove(&ch) {
                                        resp::command(&mut out, &[b"SUNSUBSCRIBE", &ch]);
                                    }
                                }
                            }
                            if !out.is_empty() {
                                if let Err(e) = conn.write(&out).await {
                                    break e;
                                }
                            }
                        }
                        v = conn.read() => match v {
                            Ok(Value::Array(Some(items))) => {
                                on_shard_push(&shared, &addr, &mut set, &mut asked, items, &reports);
                            }
                            Ok(Value::Error(e)) => {
                                // A subscription refused (MOVED: the slot is served elsewhere).
                                if let Some(ch) = asked.pop_front() {
                                    set.remove(&ch);
                                    let _ = reports.send(Report::Lost(addr.clone(), ch));
                                } else {
                                    break Error::Adapter(format!("Redis ({addr}): {e}"));
                                }
                            }
                            Ok(_) => {}
                            Err(e) => break e,
                        },
                    }
                }
            }
        };
        let _ = reports.send(Report::Down(addr.clone(), failed));
        // Wait out the backoff, following commands meanwhile.
        let wait = backoff;
        backoff = (backoff * 2).min(super::MAX_BACKOFF);
        let until = tokio::time::Instant::now() + wait;
        loop {
            tokio::select! {
                _ = shared.cancel.cancelled() => return,
                () = tokio::time::sleep_until(until) => break,
                c = commands.recv() => match c {
                    Some(c) => apply(&mut set, c),
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
    set: &mut HashSet<Bytes>,
    asked: &mut VecDeque<Bytes>,
    items: Vec<Value>,
    reports: &mpsc::UnboundedSender<Report>,
) {
    let (Some(Value::Bulk(Some(kind))), Some(Value::Bulk(Some(channel)))) =
        (items.first(), items.get(1))
    else {
        return;
    };
    match &kind[..] {
        b"ssubscribe" => {
            if asked.front() == Some(channel) {
                asked.pop_front();
            }
        }
        // Our own SUNSUBSCRIBE was for a channel no longer in the set; one still in it was
        // ended by Redis (its slot moved).
        b"sunsubscribe" => {
            if set.remove(channel) {
                let _ = reports.send(Report::Lost(addr.to_owned(), channel.clone()));
            }
        }
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

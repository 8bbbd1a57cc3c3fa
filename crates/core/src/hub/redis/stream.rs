//! Streams mode of the Redis adapter: the reader that delivers the stream to this node's members,
//! and the replay of the history to a client that reconnects.
//!
//! Every node, the publisher's own included, delivers a message when it reads it from the
//! stream, so every node sees one order. The reader keeps the id of the last entry it read (its
//! cursor) across reconnections: after an outage it goes on from there, and whatever was
//! appended meanwhile and is still in the history arrives late instead of never. Entries carry
//! their publisher's node and number; an entry whose number the reader has already seen from
//! that node (sent again after a reply lost with the connection) is skipped.
//!
//! A replay ([`Hub::join_since`]) runs on the reader's task between two reads: it sends the
//! connection the room's entries after the client's id up to the cursor, read with `XRANGE` on a
//! second connection, then joins the connection to the room; the reader's next read starts after
//! the cursor. So the client gets the entries it missed, then the live ones, each once.

use std::collections::HashMap;
use std::sync::Arc;

use bytes::BytesMut;
use tokio::sync::{mpsc, oneshot};

use super::{
    back_off, came_up, decode_data, report, Conn, Endpoint, Mode, Shared, MIN_BACKOFF, NODE_LEN,
};
use crate::error::{Error, Result};
use crate::hub::resp::{self, Value};
use crate::hub::{Hub, Recovery};
use crate::ws::PreparedMessage;

/// Entries one `XREAD` or `XRANGE` asks for.
const PAGE: usize = 512;
/// How long one `XREAD` blocks; a read that returns nothing after it is retried (and a dead
/// connection is noticed on the next write).
const BLOCK_MS: &[u8] = b"5000";
const BLOCK: std::time::Duration = std::time::Duration::from_millis(5000);

/// A stream entry id, `<milliseconds>-<sequence>`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) struct StreamId(u64, u64);

impl StreamId {
    pub(super) fn parse(s: &[u8]) -> Option<StreamId> {
        let s = std::str::from_utf8(s).ok()?;
        let (ms, seq) = s.split_once('-')?;
        let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
        if !digits(ms) || !digits(seq) {
            return None;
        }
        Some(StreamId(ms.parse().ok()?, seq.parse().ok()?))
    }
}

impl std::fmt::Display for StreamId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{}", self.0, self.1)
    }
}

/// A join waiting for its replay.
pub(super) struct Replay {
    id: u64,
    room: String,
    since: StreamId,
    done: oneshot::Sender<Result<Recovery>>,
}

/// Asks the reader to replay `room` after `since` to connection `id` and join it; waits for the
/// request timeout.
pub(super) async fn request_replay(
    shared: &Arc<Shared>,
    id: u64,
    room: String,
    since: &str,
) -> Result<Recovery> {
    let Some(replays) = &shared.replays else {
        return Err(Error::Adapter(
            "joining with `since` needs the RedisAdapter in streams mode (pub/sub keeps no history)"
                .into(),
        ));
    };
    let since = StreamId::parse(since.as_bytes()).ok_or_else(|| {
        Error::InvalidArgument(format!(
            "since {since:?} is not a message id (like 1733212345678-0)"
        ))
    })?;
    let (done, rx) = oneshot::channel();
    replays
        .try_send(Replay {
            id,
            room,
            since,
            done,
        })
        .map_err(|_| Error::Adapter("too many joins are waiting for the history".into()))?;
    match tokio::time::timeout(shared.opts.request_timeout, rx).await {
        Ok(Ok(result)) => result,
        Ok(Err(_)) => Err(Error::Adapter("the adapter closed".into())),
        Err(_) => Err(Error::Timeout("the history replay (Redis did not answer)")),
    }
}

/// One entry as read: its id, and its publisher's number and frame (`None` for an entry without
/// the adapter's fields, which is passed over).
struct Entry {
    id: StreamId,
    body: Option<(u64, bytes::Bytes)>,
}

/// Reads `[[id, [field, value, ...]], ...]` (an `XRANGE` reply, or one stream of an `XREAD`
/// reply).
fn entries(v: Value) -> Result<Vec<Entry>> {
    let bad = || Error::Adapter("unexpected stream reply from Redis".into());
    let Value::Array(Some(items)) = v else {
        return Err(bad());
    };
    let mut out = Vec::with_capacity(items.len());
    for item in items {
        let Value::Array(Some(pair)) = item else {
            return Err(bad());
        };
        let mut pair = pair.into_iter();
        let (Some(Value::Bulk(Some(id))), Some(Value::Array(Some(fields)))) =
            (pair.next(), pair.next())
        else {
            return Err(bad());
        };
        let id = StreamId::parse(&id).ok_or_else(bad)?;
        let (mut seq, mut frame) = (None, None);
        let mut fields = fields.into_iter();
        while let (Some(Value::Bulk(Some(k))), Some(Value::Bulk(Some(v)))) =
            (fields.next(), fields.next())
        {
            match &k[..] {
                b"s" => seq = <[u8; 8]>::try_from(&v[..]).ok().map(u64::from_be_bytes),
                b"d" => frame = Some(v),
                _ => {}
            }
        }
        out.push(Entry {
            id,
            body: seq.zip(frame),
        });
    }
    Ok(out)
}

/// The last number read from each publisher, and how many numbers were missing in between:
/// entries trimmed from the history before this node read them.
#[derive(Default)]
struct Seen {
    last: HashMap<[u8; NODE_LEN], u64>,
    skipped: u64,
}

/// The message an entry delivers (stamped with its id when asked), its room and the ids its
/// publisher left out (on the publisher's node only). `None` for a malformed entry or one
/// already seen from its publisher.
fn message<'a>(
    shared: &Shared,
    entry: &'a Entry,
    seen: &mut Seen,
) -> Option<(Option<&'a str>, PreparedMessage, Vec<u64>)> {
    let (seq, frame) = entry.body.as_ref()?;
    let d = decode_data(b'S', frame)?;
    let node: [u8; NODE_LEN] = d.node.try_into().ok()?;
    let last = seen.last.entry(node).or_insert(0);
    if *seq <= *last {
        return None;
    }
    if *last != 0 {
        seen.skipped += *seq - *last - 1;
    }
    *last = *seq;
    let stamp = matches!(&shared.opts.mode, Mode::Streams(s) if s.stamp_ids);
    let msg = match (d.text, stamp) {
        (true, false) => PreparedMessage::text(std::str::from_utf8(d.body).ok()?),
        (false, false) => PreparedMessage::binary(d.body),
        (true, true) => PreparedMessage::text(&format!(
            "{} {}",
            entry.id,
            std::str::from_utf8(d.body).ok()?
        )),
        (false, true) => {
            let mut b = format!("{} ", entry.id).into_bytes();
            b.extend_from_slice(d.body);
            PreparedMessage::binary(&b)
        }
    };
    let except = if node == shared.node {
        d.except
    } else {
        Vec::new()
    };
    Some((d.room, msg, except))
}

/// Sends `args` and reads one reply; a Redis error reply is an error.
async fn ask(conn: &mut Conn, args: &[&[u8]]) -> Result<Value> {
    let mut out = BytesMut::new();
    resp::command(&mut out, args);
    conn.write(&out).await?;
    match conn.read().await? {
        Value::Error(e) => Err(Error::Adapter(format!(
            "Redis refused {}: {e}",
            String::from_utf8_lossy(args[0])
        ))),
        v => Ok(v),
    }
}

/// The id of the stream's first (`XRANGE`) or last (`XREVRANGE`) entry; `None` when it is empty.
async fn end_id(conn: &mut Conn, key: &[u8], last: bool) -> Result<Option<StreamId>> {
    let reply = if last {
        ask(conn, &[b"XREVRANGE", key, b"+", b"-", b"COUNT", b"1"]).await?
    } else {
        ask(conn, &[b"XRANGE", key, b"-", b"+", b"COUNT", b"1"]).await?
    };
    let bad = || Error::Adapter("unexpected stream reply from Redis".into());
    let Value::Array(Some(items)) = reply else {
        return Err(bad());
    };
    match items.into_iter().next() {
        None => Ok(None),
        Some(Value::Array(Some(pair))) => match pair.into_iter().next() {
            Some(Value::Bulk(Some(id))) => Ok(Some(StreamId::parse(&id).ok_or_else(bad)?)),
            _ => Err(bad()),
        },
        Some(_) => Err(bad()),
    }
}

/// Opens the reading connection. The first time, the cursor starts at the stream's last entry
/// (what was published before this node came is not delivered); after an outage, it stays, and
/// a history already trimmed past it is reported (messages may have been lost).
async fn open(shared: &Shared, target: &Endpoint, cursor: &mut Option<StreamId>) -> Result<Conn> {
    let mut conn = Conn::connect(shared, target).await?;
    match *cursor {
        None => {
            *cursor = Some(
                end_id(&mut conn, &shared.stream, true)
                    .await?
                    .unwrap_or(StreamId(0, 0)),
            )
        }
        Some(at) => {
            if let Some(first) = end_id(&mut conn, &shared.stream, false).await? {
                if first > at && at != StreamId(0, 0) {
                    (shared.events)(super::AdapterEvent::Error {
                        code: "ERR_HUB_HISTORY_GAP",
                        message: format!(
                            "the stream's history no longer reaches back to {at}, where this \
                             process stopped reading: messages published meanwhile may be lost \
                             (raise historySize)"
                        ),
                    });
                }
            }
        }
    }
    Ok(conn)
}

/// Reads the stream and delivers it to this node's members; serves replays between reads.
pub(super) async fn reader(
    shared: Arc<Shared>,
    target: Endpoint,
    mut replays: mpsc::Receiver<Replay>,
) {
    let mut backoff = MIN_BACKOFF;
    let mut down = false;
    let mut ever = false;
    let mut cursor: Option<StreamId> = None;
    let mut seen = Seen::default();
    let mut query: Option<Conn>;
    // Joins whose client saw entries this process has not read yet: served once it has.
    let mut waiting: Vec<Replay> = Vec::new();
    loop {
        let opened = tokio::select! {
            _ = shared.cancel.cancelled() => return,
            c = open(&shared, &target, &mut cursor) => c,
        };
        let mut conn = match opened {
            Ok(c) => c,
            Err(e) => {
                report(&shared, "stream reading connection", &e, &mut down);
                if !back_off(&shared, &mut backoff).await {
                    return;
                }
                continue;
            }
        };
        backoff = MIN_BACKOFF;
        down = false;
        shared.reading.send_replace(true);
        // A replay after an outage opens a fresh connection (the old one may point at a Redis
        // that restarted, or at a former primary).
        query = None;
        came_up(&shared, &mut ever);
        let failed = loop {
            let at = cursor.unwrap_or(StreamId(0, 0)).to_string();
            let mut out = BytesMut::new();
            resp::command(
                &mut out,
                &[
                    b"XREAD",
                    b"COUNT",
                    PAGE.to_string().as_bytes(),
                    b"BLOCK",
                    BLOCK_MS,
                    b"STREAMS",
                    &shared.stream,
                    at.as_bytes(),
                ],
            );
            if let Err(e) = conn.write(&out).await {
                break e;
            }
            // The block time and then some: a peer gone silent without a reset fails the read.
            let deadline = tokio::time::sleep(BLOCK + super::REPLY_TIMEOUT);
            tokio::pin!(deadline);
            let reply = loop {
                tokio::select! {
                    _ = shared.cancel.cancelled() => return,
                    _ = &mut deadline => break Err(Error::Timeout("an XREAD reply from Redis")),
                    v = conn.read() => break v,
                    Some(r) = replays.recv() => {
                        waiting.extend(serve_replay(&shared, &target, &mut query, cursor, r).await);
                    }
                }
            };
            match reply {
                // Nothing within the block time: a join still waiting may be for an id past
                // the stream's end (a stream that lost its tail in a failover); ask again.
                Ok(Value::Array(None) | Value::Bulk(None)) => {
                    retry_waiting(&shared, &target, &mut query, cursor, &mut waiting, true).await;
                }
                Ok(Value::Array(Some(streams))) => {
                    let Some(hub) = Hub::upgrade(&shared.hub) else {
                        return;
                    };
                    let mut malformed = None;
                    for s in streams {
                        // Not advancing past a reply it cannot read would read it again forever:
                        // the connection counts as failed instead.
                        let list = match s {
                            Value::Array(Some(kv)) => kv.into_iter().nth(1).map(entries),
                            _ => None,
                        };
                        let list = match list {
                            Some(Ok(l)) => l,
                            Some(Err(e)) => {
                                malformed = Some(e);
                                break;
                            }
                            None => {
                                malformed = Some(Error::Adapter(
                                    "unexpected XREAD reply from Redis".into(),
                                ));
                                break;
                            }
                        };
                        for entry in &list {
                            cursor = Some(entry.id);
                            if let Some((room, msg, except)) = message(&shared, entry, &mut seen) {
                                hub.deliver_local(room, &msg, &except);
                            }
                        }
                    }
                    if seen.skipped > 0 {
                        (shared.events)(super::AdapterEvent::Error {
                            code: "ERR_HUB_HISTORY_GAP",
                            message: format!(
                                "{} messages were trimmed from the stream before this process read \
                                 them (raise historySize)",
                                std::mem::take(&mut seen.skipped)
                            ),
                        });
                    }
                    if let Some(e) = malformed {
                        break e;
                    }
                    retry_waiting(&shared, &target, &mut query, cursor, &mut waiting, false).await;
                }
                Ok(Value::Error(e)) => break Error::Adapter(format!("Redis refused XREAD: {e}")),
                Ok(_) => break Error::Adapter("unexpected XREAD reply from Redis".into()),
                Err(e) => break e,
            }
        };
        report(&shared, "stream reading connection", &failed, &mut down);
        if !back_off(&shared, &mut backoff).await {
            return;
        }
    }
}

/// Serves the joins waiting for the reader to reach their `since` once it has (or, with `all`,
/// every one, which asks Redis where the stream ends); drops those whose caller gave up.
async fn retry_waiting(
    shared: &Shared,
    target: &Endpoint,
    query: &mut Option<Conn>,
    cursor: Option<StreamId>,
    waiting: &mut Vec<Replay>,
    all: bool,
) {
    for r in std::mem::take(waiting) {
        if r.done.is_closed() {
            continue;
        }
        if !all && cursor.is_some_and(|c| r.since > c) {
            waiting.push(r);
            continue;
        }
        waiting.extend(serve_replay(shared, target, query, cursor, r).await);
    }
}

/// Serves one replay (unless its caller stopped waiting), on the query connection, opened when
/// needed and dropped after a failure. Gives it back when it must wait for the reader to reach
/// its `since`.
async fn serve_replay(
    shared: &Shared,
    target: &Endpoint,
    query: &mut Option<Conn>,
    cursor: Option<StreamId>,
    r: Replay,
) -> Option<Replay> {
    if r.done.is_closed() {
        return None;
    }
    let work = async {
        let cursor = cursor.ok_or_else(|| Error::Adapter("not connected to Redis".into()))?;
        if query.is_none() {
            *query = Some(Conn::connect(shared, target).await?);
        }
        let conn = query
            .as_mut()
            .ok_or_else(|| Error::Adapter("no connection".into()))?;
        replay(shared, conn, cursor, &r).await
    };
    let result = match tokio::time::timeout(shared.opts.request_timeout, work).await {
        Ok(r) => r,
        Err(_) => Err(Error::Timeout("the history replay (Redis did not answer)")),
    };
    if result.is_err() {
        *query = None;
    }
    match result {
        Ok(None) => Some(r),
        Ok(Some(recovery)) => {
            let _ = r.done.send(Ok(recovery));
            None
        }
        Err(e) => {
            let _ = r.done.send(Err(e));
            None
        }
    }
}

/// Replays and joins; `None` when the client saw entries that this process has not read yet
/// (`since` is past the cursor): joining now would deliver those twice, so the join waits until
/// the reader is there.
async fn replay(
    shared: &Shared,
    conn: &mut Conn,
    cursor: StreamId,
    r: &Replay,
) -> Result<Option<Recovery>> {
    let Some(hub) = Hub::upgrade(&shared.hub) else {
        return Err(Error::Adapter("the adapter closed".into()));
    };
    let Some(handle) = hub.get(r.id) else {
        return Ok(Some(Recovery::default()));
    };
    if hub.has(r.id, &r.room) {
        return Ok(Some(Recovery::default()));
    }
    // The history reaches back to `since` when its first entry is not after it, and `since` is
    // one of its ids when its last entry is not before it (an id past the end comes from another
    // stream, e.g. one that was deleted: nothing can be recovered from it).
    let first = end_id(conn, &shared.stream, false).await?;
    let mut recovered = first.is_some_and(|f| f <= r.since);
    if recovered && r.since > cursor {
        let last = end_id(conn, &shared.stream, true).await?;
        if last.is_some_and(|l| l >= r.since) {
            return Ok(None);
        }
        recovered = false;
    }
    let mut replayed = 0;
    if recovered && r.since < cursor {
        let mut seen = Seen::default();
        let mut start = r.since;
        let end = cursor.to_string();
        loop {
            let from = format!("({start}");
            let page = ask(
                conn,
                &[
                    b"XRANGE",
                    &shared.stream,
                    from.as_bytes(),
                    end.as_bytes(),
                    b"COUNT",
                    PAGE.to_string().as_bytes(),
                ],
            )
            .await?;
            let list = entries(page)?;
            for entry in &list {
                start = entry.id;
                let Some((room, msg, except)) = message(shared, entry, &mut seen) else {
                    continue;
                };
                if room == Some(r.room.as_str()) && !except.contains(&r.id) {
                    // A closed connection refuses; the join below then fails too.
                    if handle.send_prepared(&msg).is_ok() {
                        replayed += 1;
                    }
                }
            }
            if list.len() < PAGE {
                break;
            }
        }
    }
    if r.done.is_closed() {
        // The caller gave up (its timeout): do not join behind its back.
        return Err(Error::Timeout("the history replay (Redis did not answer)"));
    }
    Ok(Some(Recovery {
        joined: hub.join(r.id, &r.room),
        recovered,
        replayed,
    }))
}

#[cfg(test)]
mod tests {
    use super::super::encode_data;
    use super::*;

    #[test]
    fn stream_ids_parse_and_order() {
        assert_eq!(
            StreamId::parse(b"1733212345678-0"),
            Some(StreamId(1_733_212_345_678, 0))
        );
        assert_eq!(
            StreamId::parse(b"5-12").map(|i| i.to_string()),
            Some("5-12".into())
        );
        for bad in [
            &b""[..],
            b"12",
            b"1-",
            b"-1",
            b"1-2-3",
            b"1-x",
            b"+1-2",
            b" 1-2",
            b"99999999999999999999-0",
        ] {
            assert_eq!(
                StreamId::parse(bad),
                None,
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        assert!(StreamId(5, 9) < StreamId(6, 0));
        assert!(StreamId(6, 1) > StreamId(6, 0));
    }

    #[test]
    fn stream_frames_round_trip_with_the_ids_left_out() {
        let node = [7u8; NODE_LEN];
        let msg = PreparedMessage::text("hello");
        let f = encode_data(&node, Some("room"), &msg, Some(&[3, 9])).unwrap();
        let d = decode_data(b'S', &f).unwrap();
        assert_eq!(
            (d.node, d.room, d.text, d.body),
            (&node[..], Some("room"), true, &b"hello"[..])
        );
        assert_eq!(d.except, vec![3, 9]);
        // An empty list is not written; a pub/sub frame is not a stream frame.
        let f = encode_data(&node, None, &PreparedMessage::binary(b"\xff"), Some(&[])).unwrap();
        let d = decode_data(b'S', &f).unwrap();
        assert_eq!(
            (d.room, d.text, d.body, d.except.len()),
            (None, false, &b"\xff"[..], 0)
        );
        let pubsub = encode_data(&node, None, &msg, None).unwrap();
        assert!(decode_data(b'S', &pubsub).is_none());
        // A list cut short is malformed, not a panic.
        let f = encode_data(&node, Some("r"), &msg, Some(&[1, 2, 3])).unwrap();
        for cut in 0..f.len() - msg.len() {
            assert!(decode_data(b'S', &f[..cut]).is_none(), "cut at {cut}");
        }
    }

    fn bulk(b: &[u8]) -> Value {
        Value::Bulk(Some(bytes::Bytes::copy_from_slice(b)))
    }

    #[test]
    fn stream_replies_keep_foreign_entries_for_the_cursor_and_refuse_bad_shapes() {
        let entry = |id: &[u8], fields: Vec<Value>| {
            Value::Array(Some(vec![bulk(id), Value::Array(Some(fields))]))
        };
        let reply = Value::Array(Some(vec![
            entry(
                b"1-0",
                vec![
                    bulk(b"s"),
                    bulk(&1u64.to_be_bytes()),
                    bulk(b"d"),
                    bulk(b"x"),
                ],
            ),
            // Written by something else: passed over, but the cursor moves past it.
            entry(b"2-0", vec![bulk(b"other"), bulk(b"field")]),
            // A number of the wrong size.
            entry(b"3-0", vec![bulk(b"s"), bulk(b"1"), bulk(b"d"), bulk(b"x")]),
        ]));
        let list = entries(reply).unwrap();
        assert_eq!(
            list.iter().map(|e| e.id).collect::<Vec<_>>(),
            vec![StreamId(1, 0), StreamId(2, 0), StreamId(3, 0)]
        );
        assert!(list[0].body.is_some() && list[1].body.is_none() && list[2].body.is_none());
        assert!(entries(Value::Int(3)).is_err());
        assert!(entries(Value::Array(Some(vec![entry(b"nope", vec![])]))).is_err());
        assert!(entries(Value::Array(Some(vec![Value::Int(1)]))).is_err());
    }
}

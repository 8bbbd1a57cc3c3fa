//! Redis Cluster routing for the adapter.
//!
//! In cluster mode the hub's own names (`{prefix}#data`, `{prefix}#ctl`, `{prefix}#stream`)
//! carry the hash tag `{prefix}`, so they live in one slot, on one shard: pub/sub is sharded
//! (`SPUBLISH`/`SSUBSCRIBE`, which stays within the shard instead of crossing the whole cluster
//! bus) and the stream is one key. In pub/sub mode rooms have channels of their own, spread over
//! the shards (see the `sharded` module). Before each connection
//! the adapter asks a node it knows (`CLUSTER SLOTS`) which primary serves the slot and connects
//! there. A redirection (`MOVED`, `ASK`), a cluster that is down or a primary that failed ends
//! the connection like any other failure; the next attempt asks again, so a replica promoted
//! after a failover is found by itself.

use std::sync::Mutex;

use bytes::BytesMut;

use super::{lock, Conn, Endpoint};
use crate::error::{Error, Result};
use crate::hub::resp::{self, Value};

/// Cluster slots.
const SLOTS: u16 = 16_384;

/// CRC16-CCITT (XModem), the cluster's key hash.
fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// The slot of a key or sharded channel: the hash of its first non-empty `{...}` tag, or of the
/// whole name.
pub(super) fn key_slot(key: &[u8]) -> u16 {
    let tagged = key.iter().position(|&b| b == b'{').and_then(|open| {
        let rest = &key[open + 1..];
        let close = rest.iter().position(|&b| b == b'}')?;
        (close > 0).then(|| &rest[..close])
    });
    crc16(tagged.unwrap_or(key)) % SLOTS
}

/// Whether a Redis error reply says to try again elsewhere or later (a redirection, a cluster
/// that is reconfiguring, a node that is loading or no longer a primary) rather than that the
/// command is wrong.
pub(super) fn retryable(e: &str) -> bool {
    [
        "MOVED",
        "ASK",
        "CLUSTERDOWN",
        "TRYAGAIN",
        "LOADING",
        "READONLY",
        "MASTERDOWN",
    ]
    .iter()
    .any(|p| e.starts_with(p))
}

/// The cluster's nodes as the adapter knows them, and the slot it uses.
pub(super) struct Router {
    slot: u16,
    /// `host:port` of every node seen (the seeds first), tried in turn.
    nodes: Mutex<Vec<String>>,
}

impl Router {
    pub(super) fn new(seeds: Vec<String>, slot: u16) -> Router {
        Router {
            slot,
            nodes: Mutex::new(seeds),
        }
    }

    /// Asks the known nodes in turn which primary serves the slot; learns every node listed.
    pub(super) async fn primary(&self, base: &Endpoint) -> Result<String> {
        let ranges = self.slots(base).await?;
        ranges
            .into_iter()
            .find(|(start, end, _)| (*start..=*end).contains(&self.slot))
            .map(|(_, _, primary)| primary)
            .ok_or_else(|| {
                Error::Adapter(format!(
                    "Redis Cluster: no primary serves slot {}",
                    self.slot
                ))
            })
    }

    /// The cluster's slot ranges with their primaries, from the first known node that answers
    /// (`CLUSTER SLOTS`); learns every node listed.
    pub(super) async fn slots(&self, base: &Endpoint) -> Result<Vec<(u16, u16, String)>> {
        let nodes = lock(&self.nodes).clone();
        let mut last = Error::Adapter("no Redis Cluster node is known".into());
        for addr in nodes {
            match self.ask(base, &addr).await {
                Ok(ranges) if !ranges.is_empty() => return Ok(ranges),
                Ok(_) => last = Error::Adapter(format!("Redis Cluster: {addr} serves no slots")),
                Err(e) => last = e,
            }
        }
        Err(last)
    }

    async fn ask(&self, base: &Endpoint, addr: &str) -> Result<Vec<(u16, u16, String)>> {
        let mut conn = Conn::open(&base.at(addr)).await?;
        let mut out = BytesMut::new();
        resp::command(&mut out, &[b"CLUSTER", b"SLOTS"]);
        conn.write(&out).await?;
        // A node gone silent must not hold up asking the next one.
        let reply = conn.read_within(super::REPLY_TIMEOUT).await?;
        let (ranges, seen) = parse_slots(reply, host_of(addr))?;
        {
            let mut nodes = lock(&self.nodes);
            for n in seen {
                if !nodes.contains(&n) {
                    nodes.push(n);
                }
            }
        }
        Ok(ranges)
    }
}

/// Which primary serves which slots, as one node said.
pub(super) struct SlotMap(pub(super) Vec<(u16, u16, String)>);

impl SlotMap {
    /// The primary serving the slot of `name` (a key or sharded channel).
    pub(super) fn owner(&self, name: &[u8]) -> Option<&str> {
        let slot = key_slot(name);
        self.0
            .iter()
            .find(|(start, end, _)| (*start..=*end).contains(&slot))
            .map(|(_, _, primary)| primary.as_str())
    }
}

/// The host of a `host:port` (brackets kept for IPv6).
pub(super) fn host_of(addr: &str) -> &str {
    addr.rsplit_once(':').map_or(addr, |(h, _)| h)
}

/// `host:port` from a node entry `[ip, port, ...]` of `CLUSTER SLOTS`; an empty ip means the node
/// asked (`asked_host`).
fn node_addr(v: &Value, asked_host: &str) -> Option<String> {
    let Value::Array(Some(items)) = v else {
        return None;
    };
    let ip = match items.first()? {
        Value::Bulk(Some(b)) => std::str::from_utf8(b).ok()?.to_owned(),
        _ => return None,
    };
    let Value::Int(port) = items.get(1)? else {
        return None;
    };
    let host = if ip.is_empty() || ip == "?" {
        asked_host.to_owned()
    } else if ip.contains(':') {
        format!("[{ip}]")
    } else {
        ip
    };
    Some(format!("{host}:{port}"))
}

/// `CLUSTER SLOTS`: the slot ranges with their primary, and every node listed.
type Slots = (Vec<(u16, u16, String)>, Vec<String>);

fn parse_slots(reply: Value, asked_host: &str) -> Result<Slots> {
    let bad = || Error::Adapter("unexpected CLUSTER SLOTS reply".into());
    let items = match reply {
        Value::Array(Some(items)) => items,
        Value::Error(e) => return Err(Error::Adapter(format!("CLUSTER SLOTS refused: {e}"))),
        _ => return Err(bad()),
    };
    let mut ranges = Vec::new();
    let mut nodes = Vec::new();
    for item in items {
        let Value::Array(Some(parts)) = item else {
            return Err(bad());
        };
        let (Some(Value::Int(start)), Some(Value::Int(end))) = (parts.first(), parts.get(1)) else {
            return Err(bad());
        };
        let (start, end) = (
            u16::try_from(*start).map_err(|_| bad())?,
            u16::try_from(*end).map_err(|_| bad())?,
        );
        let primary = parts
            .get(2)
            .and_then(|n| node_addr(n, asked_host))
            .ok_or_else(bad)?;
        for n in &parts[2..] {
            if let Some(a) = node_addr(n, asked_host) {
                if !nodes.contains(&a) {
                    nodes.push(a);
                }
            }
        }
        ranges.push((start, end, primary));
    }
    Ok((ranges, nodes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_follow_the_cluster_spec() {
        // Values from the Redis Cluster specification and `CLUSTER KEYSLOT`.
        assert_eq!(crc16(b"123456789"), 0x31C3);
        assert_eq!(key_slot(b"foo"), 12_182);
        assert_eq!(key_slot(b"{user1000}.following"), key_slot(b"user1000"));
        assert_eq!(
            key_slot(b"{hypersock}#stream"),
            key_slot(b"{hypersock}#ctl")
        );
        // An empty tag does not count: the whole name is hashed.
        assert_eq!(key_slot(b"foo{}{bar}"), crc16(b"foo{}{bar}") % SLOTS);
        assert_eq!(key_slot(b"foo{{bar}}zap"), key_slot(b"{bar"));
    }

    #[test]
    fn the_slot_map_names_the_primary_of_a_channel() {
        let map = SlotMap(vec![(0, 8191, "a:1".into()), (8192, 16_383, "b:2".into())]);
        assert_eq!(map.owner(b"foo"), Some("b:2")); // slot 12 182
        assert_eq!(map.owner(b"{user1000}.x"), map.owner(b"user1000"));
        assert_eq!(SlotMap(vec![(0, 10, "a:1".into())]).owner(b"foo"), None);
    }

    #[test]
    fn cluster_slots_replies_name_each_ranges_primary() {
        let node = |ip: &str, port: i64| {
            Value::Array(Some(vec![
                Value::Bulk(Some(bytes::Bytes::copy_from_slice(ip.as_bytes()))),
                Value::Int(port),
                Value::Bulk(Some(bytes::Bytes::from_static(b"id"))),
            ]))
        };
        let reply = Value::Array(Some(vec![
            Value::Array(Some(vec![
                Value::Int(0),
                Value::Int(5460),
                node("127.0.0.1", 7000),
                node("127.0.0.1", 7003),
            ])),
            Value::Array(Some(vec![
                Value::Int(5461),
                Value::Int(16383),
                node("", 7001),
                node("::1", 7004),
            ])),
        ]));
        let (ranges, nodes) = parse_slots(reply, "10.0.0.9").unwrap();
        assert_eq!(
            ranges,
            vec![
                (0, 5460, "127.0.0.1:7000".into()),
                (5461, 16383, "10.0.0.9:7001".into())
            ]
        );
        assert_eq!(
            nodes,
            vec![
                "127.0.0.1:7000",
                "127.0.0.1:7003",
                "10.0.0.9:7001",
                "[::1]:7004"
            ]
        );
        assert!(parse_slots(
            Value::Error("ERR This instance has cluster support disabled".into()),
            "h"
        )
        .is_err());
        assert!(parse_slots(Value::Array(Some(vec![Value::Int(1)])), "h").is_err());
        assert!(
            retryable("MOVED 3999 127.0.0.1:6381") && retryable("CLUSTERDOWN The cluster is down")
        );
        assert!(!retryable(
            "WRONGTYPE Operation against a key holding the wrong kind of value"
        ));
    }
}

use std::sync::Arc;
use std::time::Duration;

use hypersock_core::hub::redis::{AdapterEvent, Mode, RedisAdapter, RedisOptions, StreamOptions};
use hypersock_core::hub::{Hub, HubOptions, SlowPolicy};
use hypersock_core::ws::PreparedMessage;
use napi::bindgen_prelude::*;
use napi::threadsafe_function::{ThreadsafeFunction, ThreadsafeFunctionCallMode};
use napi_derive::napi;

use crate::client::{tls_options, BindingTlsOptions};
use crate::error::{Fail, JsResult, Outcome};
use crate::websocket::BindingPreparedMessage;

/// Hub settings, defaulted by the TS layer.
#[napi(object)]
pub struct BindingHubOptions {
    /// 0: skip a receiver over the limit, 1: drop it (close 1008).
    pub slow_policy: Option<u32>,
    /// Queued bytes past which a receiver is slow; 0 uses each connection's `maxBackpressure`.
    pub max_backpressure: Option<f64>,
}

/// Builds the core hub of a server from the TS options.
pub(crate) fn hub_from(o: Option<&BindingHubOptions>) -> Hub {
    let Some(o) = o else {
        return Hub::default();
    };
    let d = HubOptions::default();
    Hub::new(HubOptions {
        slow_policy: match o.slow_policy {
            None => d.slow_policy,
            Some(1) => SlowPolicy::Close,
            Some(_) => SlowPolicy::Skip,
        },
        max_backpressure: o
            .max_backpressure
            .map_or(d.max_backpressure, |n| (n > 0.0).then_some(n as usize)),
    })
}

/// `(kind, text)`: 0 ready, 1 error (text says why), 2 reconnect.
/// Kinds of Redis adapter events (`useRedis`'s `onEvent`); exported to JS.
#[napi]
pub enum AdapterEventKind {
    /// Subscribed for the first time.
    Ready = 0,
    /// A connection failed or was lost (with the error).
    Error = 1,
    /// Subscribed again after an outage.
    Reconnect = 2,
}

pub(crate) type AdapterEventArgs = FnArgs<(u32, Option<Fail>)>;
pub(crate) type AdapterEventCallback =
    ThreadsafeFunction<AdapterEventArgs, (), AdapterEventArgs, Status, false, true>;

/// Options of `useRedis`, validated by the TS layer; what it leaves out takes the engine's
/// default (`RedisOptions::default()`).
#[napi(object)]
pub struct BindingRedisOptions {
    pub url: Option<String>,
    pub channel: Option<String>,
    pub request_timeout_ms: Option<u32>,
    pub max_queue: Option<u32>,
    /// TLS settings of a `rediss://` URL.
    pub tls: Option<BindingTlsOptions>,
    /// Relay through a Redis Stream (at least once, with a history) instead of pub/sub.
    pub streams: Option<bool>,
    /// Streams mode: messages the history keeps.
    pub history_size: Option<u32>,
    /// Streams mode: drop the history after this long without a publish.
    pub history_ttl_ms: Option<f64>,
    /// Streams mode: start each delivered message with its id and a space.
    pub stamp_ids: Option<bool>,
    /// Redis Cluster: URLs of some of its nodes.
    pub cluster: Option<Vec<String>>,
}

/// What `joinSince` did.
#[napi(object)]
pub struct BindingRecovery {
    pub joined: bool,
    pub recovered: bool,
    pub replayed: u32,
}

/// The hub of a server: rooms, metadata and fan-out of its WebSocket connections.
#[napi]
pub struct BindingHub {
    hub: Hub,
}

impl BindingHub {
    pub(crate) fn new(hub: Hub) -> Self {
        BindingHub { hub }
    }
}

fn ids(except: Option<Vec<i64>>) -> Vec<u64> {
    except
        .unwrap_or_default()
        .into_iter()
        .filter_map(|id| u64::try_from(id).ok())
        .collect()
}

fn id(id: i64) -> u64 {
    u64::try_from(id).unwrap_or(0)
}

#[napi]
impl BindingHub {
    /// Registered connections.
    #[napi(getter)]
    pub fn size(&self) -> u32 {
        self.hub.size() as u32
    }

    /// Ids of every registered connection.
    #[napi]
    pub fn ids(&self) -> Vec<i64> {
        self.hub.ids().into_iter().map(|i| i as i64).collect()
    }

    /// Adds a connection to a room; false when closed or already in it.
    #[napi]
    pub fn join(&self, conn: i64, room: String) -> bool {
        self.hub.join(id(conn), &room)
    }

    /// Removes a connection from a room; false when it was not in it.
    #[napi]
    pub fn leave(&self, conn: i64, room: String) -> bool {
        self.hub.leave(id(conn), &room)
    }

    /// Removes a connection from every room; returns how many it left.
    #[napi]
    pub fn leave_all(&self, conn: i64) -> u32 {
        self.hub.leave_all(id(conn)) as u32
    }

    /// True when the connection is in the room.
    #[napi]
    pub fn has(&self, conn: i64, room: String) -> bool {
        self.hub.has(id(conn), &room)
    }

    /// Rooms of a connection, sorted.
    #[napi]
    pub fn rooms(&self, conn: i64) -> Vec<String> {
        self.hub.rooms_of(id(conn))
    }

    /// Local members of a room.
    #[napi]
    pub fn room_size(&self, room: String) -> u32 {
        self.hub.room_size(&room) as u32
    }

    /// Rooms with local members, sorted.
    #[napi]
    pub fn room_names(&self) -> Vec<String> {
        self.hub.room_names()
    }

    /// Ids of a room's local members.
    #[napi]
    pub fn members(&self, room: String) -> Vec<i64> {
        self.hub
            .members(&room)
            .into_iter()
            .map(|i| i as i64)
            .collect()
    }

    /// Sets (or with null removes) a metadata entry; false when the connection is closed.
    #[napi]
    pub fn set_meta(&self, conn: i64, key: String, value: Option<String>) -> bool {
        self.hub.set_meta(id(conn), &key, value)
    }

    /// One metadata entry.
    #[napi]
    pub fn get_meta(&self, conn: i64, key: String) -> Option<String> {
        self.hub.meta(id(conn), &key)
    }

    /// All metadata as `[key, value, key, value, ...]`.
    #[napi]
    pub fn meta(&self, conn: i64) -> Vec<String> {
        self.hub
            .meta_all(id(conn))
            .into_iter()
            .flat_map(|(k, v)| [k, v])
            .collect()
    }

    /// Frames `data` once and queues it on every member of `room` (null: every connection)
    /// except `except`, and relays it through the adapter. Returns
    /// `[sent, skipped, dropped]` locally.
    #[napi]
    pub fn publish(
        &self,
        room: Option<String>,
        data: Either<String, &[u8]>,
        except: Option<Vec<i64>>,
    ) -> Vec<u32> {
        let msg = match data {
            Either::A(text) => PreparedMessage::text(&text),
            Either::B(bytes) => PreparedMessage::binary(bytes),
        };
        self.send(room, &msg, except)
    }

    /// Same as `publish` with a message prepared earlier.
    #[napi]
    pub fn publish_prepared(
        &self,
        room: Option<String>,
        msg: &BindingPreparedMessage,
        except: Option<Vec<i64>>,
    ) -> Vec<u32> {
        self.send(room, &msg.inner, except)
    }

    fn send(
        &self,
        room: Option<String>,
        msg: &PreparedMessage,
        except: Option<Vec<i64>>,
    ) -> Vec<u32> {
        // Inside the runtime's context, so that the fan-out can leave waking the receivers to a
        // task on an I/O thread.
        let d = napi::bindgen_prelude::within_runtime_if_available(|| {
            self.hub.publish(room.as_deref(), msg, &ids(except))
        });
        vec![d.sent as u32, d.skipped as u32, d.dropped as u32]
    }

    /// Starts relaying publishes through Redis (replacing any adapter); events go to `onEvent`.
    /// `onEvent(kind, error)`: 0 ready, 1 error (with the error), 2 reconnected.
    #[napi(ts_return_type = "Promise<void>")]
    pub async fn use_redis(
        &self,
        options: BindingRedisOptions,
        #[napi(ts_arg_type = "(kind: number, error: Error | null) => void")]
        on_event: AdapterEventCallback,
    ) -> Outcome<()> {
        self.start_redis(options, on_event).into()
    }

    fn start_redis(
        &self,
        options: BindingRedisOptions,
        on_event: AdapterEventCallback,
    ) -> JsResult<()> {
        let events = Arc::new(move |e: AdapterEvent| {
            let args: AdapterEventArgs = match e {
                AdapterEvent::Ready => (AdapterEventKind::Ready as u32, None),
                AdapterEvent::Error { code, message } => (
                    AdapterEventKind::Error as u32,
                    Some(Fail::new(code, message)),
                ),
                AdapterEvent::Reconnect => (AdapterEventKind::Reconnect as u32, None),
            }
            .into();
            on_event.call(args, ThreadsafeFunctionCallMode::NonBlocking);
        });
        let d = RedisOptions::default();
        let opts = RedisOptions {
            url: options.url.unwrap_or(d.url),
            channel: options.channel.unwrap_or(d.channel),
            request_timeout: options
                .request_timeout_ms
                .map_or(d.request_timeout, |v| Duration::from_millis(u64::from(v))),
            max_queue: options.max_queue.map_or(d.max_queue, |n| n as usize),
            tls: options.tls.map(|t| tls_options(Some(t))).transpose()?,
            mode: if options.streams.unwrap_or(false) {
                let s = StreamOptions::default();
                Mode::Streams(StreamOptions {
                    history_size: options.history_size.map_or(s.history_size, |n| n as usize),
                    history_ttl: options
                        .history_ttl_ms
                        .map(|ms| Duration::from_millis(ms as u64))
                        .or(s.history_ttl),
                    stamp_ids: options.stamp_ids.unwrap_or(s.stamp_ids),
                })
            } else {
                Mode::PubSub
            },
            cluster: options.cluster.unwrap_or_default(),
        };
        RedisAdapter::start(&self.hub, opts, events)?;
        Ok(())
    }

    /// Stops relaying (back to in-process).
    #[napi]
    pub fn close_adapter(&self) {
        self.hub.set_adapter(None);
    }

    /// Members of a room on every process, with their metadata (through the adapter).
    #[napi(ts_return_type = "Promise<Array<BindingClusterMember>>")]
    pub async fn cluster_members(&self, room: String) -> Outcome<Vec<BindingClusterMember>> {
        let hub = self.hub.clone();
        hub.cluster_members(&room)
            .await
            .map(|all| {
                all.into_iter()
                    .map(|m| BindingClusterMember {
                        node: m.node,
                        id: m.id as f64,
                        meta: m.meta.into_iter().flat_map(|(k, v)| [k, v]).collect(),
                        local: m.local,
                    })
                    .collect()
            })
            .into()
    }

    /// Joins a room after replaying, from the adapter's history, the room's messages after the
    /// id `since` (streams mode).
    #[napi(ts_return_type = "Promise<BindingRecovery>")]
    pub async fn join_since(
        &self,
        conn: i64,
        room: String,
        since: String,
    ) -> Outcome<BindingRecovery> {
        let hub = self.hub.clone();
        hub.join_since(id(conn), &room, &since)
            .await
            .map(|r| BindingRecovery {
                joined: r.joined,
                recovered: r.recovered,
                replayed: r.replayed as u32,
            })
            .into()
    }

    /// Members of a room on every process (through the adapter).
    #[napi(ts_return_type = "Promise<number>")]
    pub async fn cluster_room_size(&self, room: String) -> Outcome<f64> {
        let hub = self.hub.clone();
        hub.cluster_room_size(&room).await.map(|n| n as f64).into()
    }
}

/// A member of a room on some process (`clusterMembers`).
#[napi(object)]
pub struct BindingClusterMember {
    /// The process's id in the adapter; empty without one.
    pub node: String,
    pub id: f64,
    /// Metadata as a flat list: key, value, key, value, ... sorted by key.
    pub meta: Vec<String>,
    pub local: bool,
}

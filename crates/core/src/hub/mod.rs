//! The hub: a registry of a server's WebSocket connections, rooms, per-connection metadata and
//! fan-out.
//!
//! Every connection of a server is registered when it opens and removed (leaving all its
//! rooms) before its close is reported. A publish frames the message once
//! ([`PreparedMessage`]) and queues the same bytes on every receiver's [`WsHandle`]; nothing
//! per receiver leaves Rust. A receiver whose queue is over the backpressure limit is skipped
//! or dropped ([`SlowPolicy`]); sends never block, so a slow receiver never holds up the others.
//!
//! An [`Adapter`] relays publishes to other processes (see [`redis::RedisAdapter`]); without
//! one, the hub is in-process.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, RwLock, RwLockReadGuard, RwLockWriteGuard};

use crate::error::Result;
use crate::ws::{PreparedMessage, SendStatus, WsHandle};

pub mod redis;
mod resp;

/// What to do with a receiver whose send queue is over the limit when a publish reaches it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum SlowPolicy {
    /// Do not queue the message for it (it misses this message); the connection stays open.
    #[default]
    Skip,
    /// Drop the connection (close code 1008).
    Close,
}

/// Options of a [`Hub`].
#[derive(Debug, Clone, Default)]
pub struct HubOptions {
    /// What happens to a receiver over the limit.
    pub slow_policy: SlowPolicy,
    /// Queued bytes past which a receiver counts as slow. `None` uses each connection's own
    /// `max_backpressure`.
    pub max_backpressure: Option<usize>,
}

/// What one publish did locally.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Delivery {
    /// Receivers the message was queued for.
    pub sent: usize,
    /// Receivers skipped because they were over the limit ([`SlowPolicy::Skip`]).
    pub skipped: usize,
    /// Receivers dropped because they were over the limit ([`SlowPolicy::Close`]), or that
    /// went away meanwhile.
    pub dropped: usize,
}

/// A future returned by an [`Adapter`].
pub type AdapterFuture = Pin<Box<dyn Future<Output = Result<usize>> + Send>>;

/// The future of [`Adapter::remote_members`].
pub type MembersFuture = Pin<Box<dyn Future<Output = Result<Vec<ClusterMember>>> + Send>>;

/// A member of a room on some process, as [`Hub::cluster_members`] lists it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterMember {
    /// The process's id in the adapter (the same for all its members; empty without an
    /// adapter).
    pub node: String,
    /// The connection's id on its process.
    pub id: u64,
    /// The connection's metadata ([`Hub::set_meta`]), sorted by key.
    pub meta: Vec<(String, String)>,
    /// On this process.
    pub local: bool,
}

/// The future of [`Adapter::replay`].
pub type ReplayFuture = Pin<Box<dyn Future<Output = Result<Recovery>> + Send>>;

/// What [`Hub::join_since`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Recovery {
    /// The connection joined the room (false: it is closed, or was already in it).
    pub joined: bool,
    /// Every message published to the room after the given id was still in the history, so the
    /// connection got all it missed. False when the history no longer reaches back that far:
    /// nothing was replayed and the client must catch up another way.
    pub recovered: bool,
    /// Messages replayed to the connection.
    pub replayed: usize,
}

/// Relays publishes to the hubs of other processes.
pub trait Adapter: Send + Sync + 'static {
    /// Called on a publish to `room` (`None`: everyone) so other processes deliver it too
    /// (`except`: ids of this process left out). After the local delivery, unless
    /// [`Adapter::delivers_own`]. Must not block.
    fn publish(&self, room: Option<&str>, msg: &PreparedMessage, except: &[u64]);
    /// True when the adapter also delivers this process's publishes to its members, in the
    /// order every process sees them (Redis streams): the hub then leaves them to it.
    fn delivers_own(&self) -> bool {
        false
    }
    /// Sends connection `id` the messages of `room` after the one with id `since`, then joins it
    /// to the room with no message missed or repeated in between.
    fn replay(&self, _id: u64, _room: &str, _since: &str) -> ReplayFuture {
        Box::pin(async {
            Err(crate::error::Error::Adapter(
                "joining with `since` needs a RedisAdapter in streams mode (the history)".into(),
            ))
        })
    }
    /// Number of members of `room` on the other processes.
    fn remote_room_size(&self, room: &str) -> AdapterFuture;
    /// Members of `room` on the other processes, with their metadata.
    fn remote_members(&self, _room: &str) -> MembersFuture {
        Box::pin(async { Ok(Vec::new()) })
    }
    /// `room` got its first local member or lost its last (the adapter may look at
    /// [`Hub::room_size`] to see which: notices from threads that raced may arrive out of order).
    /// Must not block.
    fn room_changed(&self, _room: &str) {}
    /// This process's id among the adapter's processes.
    fn node_id(&self) -> String {
        String::new()
    }
    /// Stops relaying (the hub is shutting down or the adapter is replaced).
    fn close(&self);
}

struct Conn {
    handle: WsHandle,
    rooms: Boxed<HashSet<Arc<str>>>,
    meta: Boxed<HashMap<String, String>>,
}

/// A collection that takes one word while empty, as most connections have no rooms or
/// metadata: with a hash set and map inline, a registered connection's entry was 120 bytes, and
/// the table holds up to twice as many entries as connections. Dereferences to the collection
/// (an empty one while unset); [`Boxed::get_mut`] makes it, and [`Boxed::tidy`] drops it once
/// empty again.
struct Boxed<T>(Option<Box<T>>);

impl<T> Default for Boxed<T> {
    fn default() -> Self {
        Self(None)
    }
}

impl<T: Default + 'static> std::ops::Deref for Boxed<T>
where
    T: EmptyCollection,
{
    type Target = T;
    fn deref(&self) -> &T {
        self.0.as_deref().unwrap_or_else(|| T::empty())
    }
}

impl<T: Default + EmptyCollection> Boxed<T> {
    /// The collection, made if unset.
    fn get_mut(&mut self) -> &mut T {
        self.0.get_or_insert_with(Box::default)
    }

    /// Drops the collection when it is empty.
    fn tidy(&mut self) {
        if self.0.as_deref().is_some_and(T::is_empty_collection) {
            self.0 = None;
        }
    }

    /// Takes the collection out, leaving it unset.
    fn take(&mut self) -> T {
        self.0.take().map(|b| *b).unwrap_or_default()
    }
}

/// An empty collection with a `'static` lifetime, for [`Boxed`]'s unset state.
trait EmptyCollection: Sized {
    fn empty() -> &'static Self;
    fn is_empty_collection(&self) -> bool;
}

impl EmptyCollection for HashSet<Arc<str>> {
    fn empty() -> &'static Self {
        static EMPTY: std::sync::OnceLock<HashSet<Arc<str>>> = std::sync::OnceLock::new();
        EMPTY.get_or_init(HashSet::new)
    }
    fn is_empty_collection(&self) -> bool {
        self.is_empty()
    }
}

impl EmptyCollection for HashMap<String, String> {
    fn empty() -> &'static Self {
        static EMPTY: std::sync::OnceLock<HashMap<String, String>> = std::sync::OnceLock::new();
        EMPTY.get_or_init(HashMap::new)
    }
    fn is_empty_collection(&self) -> bool {
        self.is_empty()
    }
}

impl Conn {
    /// The connection's metadata, sorted by key.
    fn sorted_meta(&self) -> Vec<(String, String)> {
        let mut all: Vec<(String, String)> = self
            .meta
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect();
        all.sort();
        all
    }
}

/// A room's members, with their handles, so that a fan-out walks one table instead of looking
/// every member up in the connections.
type Members = HashMap<u64, WsHandle>;

#[derive(Default)]
struct State {
    conns: HashMap<u64, Conn>,
    rooms: HashMap<Arc<str>, Members>,
}

pub(crate) struct Inner {
    state: RwLock<State>,
    opts: HubOptions,
    adapter: RwLock<Option<Arc<dyn Adapter>>>,
}

/// A registry of connections with rooms and fan-out. Cloning is cheap (one reference count);
/// all methods can be called from any thread.
#[derive(Clone)]
pub struct Hub(Arc<Inner>);

impl Default for Hub {
    fn default() -> Self {
        Hub::new(HubOptions::default())
    }
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub").field("size", &self.size()).finish()
    }
}

/// Connection ids that a publish skips; a linear scan for a few, a set for many.
enum Except<'a> {
    Few(&'a [u64]),
    Many(HashSet<u64>),
}

impl Except<'_> {
    fn new(ids: &[u64]) -> Except<'_> {
        if ids.len() <= 8 {
            Except::Few(ids)
        } else {
            Except::Many(ids.iter().copied().collect())
        }
    }

    fn contains(&self, id: u64) -> bool {
        match self {
            Except::Few(ids) => ids.contains(&id),
            Except::Many(set) => set.contains(&id),
        }
    }
}

impl Hub {
    /// A hub with `opts` and no adapter (in-process).
    pub fn new(opts: HubOptions) -> Self {
        Hub(Arc::new(Inner {
            state: RwLock::new(State::default()),
            opts,
            adapter: RwLock::new(None),
        }))
    }

    fn read(&self) -> RwLockReadGuard<'_, State> {
        self.0.state.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> RwLockWriteGuard<'_, State> {
        self.0.state.write().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn downgrade(&self) -> std::sync::Weak<Inner> {
        Arc::downgrade(&self.0)
    }

    pub(crate) fn upgrade(weak: &std::sync::Weak<Inner>) -> Option<Hub> {
        weak.upgrade().map(Hub)
    }

    /// Registers a connection (the server does this when it opens). Registering an id again
    /// replaces its handle and keeps its rooms.
    pub fn add(&self, handle: WsHandle) {
        let mut st = self.write();
        let id = handle.id();
        let st = &mut *st;
        match st.conns.get_mut(&id) {
            Some(conn) => {
                for room in conn.rooms.iter() {
                    if let Some(member) = st.rooms.get_mut(room).and_then(|m| m.get_mut(&id)) {
                        *member = handle.clone();
                    }
                }
                conn.handle = handle;
            }
            None => {
                st.conns.insert(
                    id,
                    Conn {
                        handle,
                        rooms: Boxed::default(),
                        meta: Boxed::default(),
                    },
                );
            }
        }
    }

    /// Unregisters connection `id`: it leaves every room and its metadata is dropped. Returns
    /// false when it was not registered. The server does this before reporting a close.
    pub fn remove(&self, id: u64) -> bool {
        let mut closed = Vec::new();
        {
            let mut st = self.write();
            let Some(mut conn) = st.conns.remove(&id) else {
                return false;
            };
            for room in conn.rooms.take() {
                if leave_room(&mut st.rooms, &room, id) {
                    closed.push(room);
                }
            }
        }
        self.rooms_changed(closed);
        true
    }

    /// Number of registered connections.
    pub fn size(&self) -> usize {
        self.read().conns.len()
    }

    /// The handle of connection `id`.
    pub fn get(&self, id: u64) -> Option<WsHandle> {
        self.read().conns.get(&id).map(|c| c.handle.clone())
    }

    /// Ids of every registered connection.
    pub fn ids(&self) -> Vec<u64> {
        self.read().conns.keys().copied().collect()
    }

    /// Adds connection `id` to `room`. Returns false when the connection is not registered
    /// (closed) or already in the room.
    pub fn join(&self, id: u64, room: &str) -> bool {
        let opened = {
            let mut st = self.write();
            let st = &mut *st;
            let Some(conn) = st.conns.get_mut(&id) else {
                return false;
            };
            if conn.rooms.contains(room) {
                return false;
            }
            let (key, opened): (Arc<str>, bool) = match st.rooms.get_key_value(room) {
                Some((k, _)) => (k.clone(), false),
                None => (Arc::from(room), true),
            };
            conn.rooms.get_mut().insert(key.clone());
            st.rooms
                .entry(key)
                .or_default()
                .insert(id, conn.handle.clone());
            opened
        };
        if opened {
            self.rooms_changed([room]);
        }
        true
    }

    /// Tells the adapter about rooms that got their first member or lost their last.
    fn rooms_changed<R: AsRef<str>>(&self, rooms: impl IntoIterator<Item = R>) {
        if let Some(adapter) = self.adapter() {
            for room in rooms {
                adapter.room_changed(room.as_ref());
            }
        }
    }

    /// Removes connection `id` from `room`. Returns false when it was not in it.
    pub fn leave(&self, id: u64, room: &str) -> bool {
        let closed = {
            let mut st = self.write();
            let Some(conn) = st.conns.get_mut(&id) else {
                return false;
            };
            if !conn.rooms.contains(room) {
                return false;
            }
            conn.rooms.get_mut().remove(room);
            conn.rooms.tidy();
            leave_room(&mut st.rooms, room, id)
        };
        if closed {
            self.rooms_changed([room]);
        }
        true
    }

    /// Removes connection `id` from every room; returns how many it left.
    pub fn leave_all(&self, id: u64) -> usize {
        let mut closed = Vec::new();
        let n = {
            let mut st = self.write();
            let Some(conn) = st.conns.get_mut(&id) else {
                return 0;
            };
            let rooms = conn.rooms.take();
            let n = rooms.len();
            for room in rooms {
                if leave_room(&mut st.rooms, &room, id) {
                    closed.push(room);
                }
            }
            n
        };
        self.rooms_changed(closed);
        n
    }

    /// True when connection `id` is in `room`.
    pub fn has(&self, id: u64, room: &str) -> bool {
        self.read()
            .conns
            .get(&id)
            .is_some_and(|c| c.rooms.contains(room))
    }

    /// The rooms of connection `id`, sorted.
    pub fn rooms_of(&self, id: u64) -> Vec<String> {
        let mut rooms: Vec<String> = self
            .read()
            .conns
            .get(&id)
            .map(|c| c.rooms.iter().map(|r| r.to_string()).collect())
            .unwrap_or_default();
        rooms.sort();
        rooms
    }

    /// Number of local members of `room`.
    pub fn room_size(&self, room: &str) -> usize {
        self.read().rooms.get(room).map_or(0, HashMap::len)
    }

    /// Names of every room with at least one local member, sorted.
    pub fn room_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.read().rooms.keys().map(|r| r.to_string()).collect();
        names.sort();
        names
    }

    /// Ids of the local members of `room`.
    pub fn members(&self, room: &str) -> Vec<u64> {
        self.read()
            .rooms
            .get(room)
            .map(|m| m.keys().copied().collect())
            .unwrap_or_default()
    }

    /// Sets metadata `key` of connection `id` (`None` removes it). Returns false when the
    /// connection is not registered.
    pub fn set_meta(&self, id: u64, key: &str, value: Option<String>) -> bool {
        let mut st = self.write();
        let Some(conn) = st.conns.get_mut(&id) else {
            return false;
        };
        match value {
            Some(v) => {
                conn.meta.get_mut().insert(key.to_owned(), v);
            }
            None => {
                if conn.meta.contains_key(key) {
                    conn.meta.get_mut().remove(key);
                    conn.meta.tidy();
                }
            }
        }
        true
    }

    /// Metadata `key` of connection `id`.
    pub fn meta(&self, id: u64, key: &str) -> Option<String> {
        self.read()
            .conns
            .get(&id)
            .and_then(|c| c.meta.get(key).cloned())
    }

    /// All metadata of connection `id`, sorted by key.
    pub fn meta_all(&self, id: u64) -> Vec<(String, String)> {
        self.read()
            .conns
            .get(&id)
            .map(Conn::sorted_meta)
            .unwrap_or_default()
    }

    /// Installs (or with `None` removes) the adapter that relays publishes to other
    /// processes; the previous one is closed.
    pub fn set_adapter(&self, adapter: Option<Arc<dyn Adapter>>) {
        let old = std::mem::replace(
            &mut *self.0.adapter.write().unwrap_or_else(|e| e.into_inner()),
            adapter,
        );
        if let Some(old) = old {
            old.close();
        }
    }

    fn adapter(&self) -> Option<Arc<dyn Adapter>> {
        self.0
            .adapter
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Publishes `msg` to the members of `room` (`None`: every connection) except the ids in
    /// `except`, here and, through the adapter, on every other process (where `except` does not
    /// apply: ids are per process).
    ///
    /// With an adapter that delivers its own process's publishes ([`Adapter::delivers_own`]),
    /// delivery happens once the adapter has stored the message, and the returned counts are 0.
    pub fn publish(&self, room: Option<&str>, msg: &PreparedMessage, except: &[u64]) -> Delivery {
        let adapter = self.adapter();
        if let Some(adapter) = &adapter {
            if adapter.delivers_own() {
                adapter.publish(room, msg, except);
                return Delivery::default();
            }
        }
        let delivery = self.deliver_local(room, msg, except);
        if let Some(adapter) = adapter {
            adapter.publish(room, msg, except);
        }
        delivery
    }

    /// Joins connection `id` to `room` after sending it, from the adapter's history, the room's
    /// messages published after the one with id `since` (a client that reconnects gives the
    /// last id it saw): the missed ones, then the live ones, in order, each once. Fails without
    /// an adapter that keeps a history.
    pub async fn join_since(&self, id: u64, room: &str, since: &str) -> Result<Recovery> {
        match self.adapter() {
            Some(adapter) => adapter.replay(id, room, since).await,
            None => Err(crate::error::Error::Adapter(
                "joining with `since` needs a RedisAdapter in streams mode (the history)".into(),
            )),
        }
    }

    /// Members of `room` (`None`: all) on this process and, through the adapter, on the others.
    pub async fn cluster_room_size(&self, room: &str) -> Result<usize> {
        let local = self.room_size(room);
        match self.adapter() {
            Some(adapter) => Ok(local + adapter.remote_room_size(room).await?),
            None => Ok(local),
        }
    }

    /// Members of `room` on every process, with their metadata: the local ones, then those the
    /// adapter gathers from the other processes (which fails when one does not answer in time).
    pub async fn cluster_members(&self, room: &str) -> Result<Vec<ClusterMember>> {
        let adapter = self.adapter();
        let node = adapter.as_ref().map(|a| a.node_id()).unwrap_or_default();
        let mut all: Vec<ClusterMember> = self
            .member_entries(room)
            .into_iter()
            .map(|(id, meta)| ClusterMember {
                node: node.clone(),
                id,
                meta,
                local: true,
            })
            .collect();
        if let Some(adapter) = adapter {
            all.extend(adapter.remote_members(room).await?);
        }
        Ok(all)
    }

    /// Ids and metadata (sorted by key) of the local members of `room`, by id.
    pub fn member_entries(&self, room: &str) -> Vec<(u64, Vec<(String, String)>)> {
        let st = self.read();
        let mut out: Vec<(u64, Vec<(String, String)>)> = st
            .rooms
            .get(room)
            .map(|m| {
                m.keys()
                    .map(|id| {
                        let meta = st.conns.get(id).map(Conn::sorted_meta);
                        (*id, meta.unwrap_or_default())
                    })
                    .collect()
            })
            .unwrap_or_default();
        out.sort_by_key(|(id, _)| *id);
        out
    }

    /// Queues `msg` on the local receivers only (what an adapter calls for a remote publish).
    pub fn deliver_local(
        &self,
        room: Option<&str>,
        msg: &PreparedMessage,
        except: &[u64],
    ) -> Delivery {
        let except = Except::new(except);
        let opts = &self.0.opts;
        let mut d = Delivery::default();
        let mut wakers = Vec::new();
        let st = self.read();
        let send = |handle: &WsHandle| {
            if except.contains(handle.id()) {
                return;
            }
            let limit = opts
                .max_backpressure
                .unwrap_or_else(|| handle.max_backpressure());
            if handle.buffered_amount().saturating_add(msg.len()) > limit {
                match opts.slow_policy {
                    SlowPolicy::Skip => d.skipped += 1,
                    SlowPolicy::Close => {
                        handle.drop_slow();
                        d.dropped += 1;
                    }
                }
                return;
            }
            match handle.send_prepared_deferred(msg) {
                Ok((SendStatus::Queued | SendStatus::Backpressure, waker)) => {
                    d.sent += 1;
                    wakers.extend(waker);
                }
                Ok((SendStatus::Dropped, _)) | Err(_) => d.dropped += 1,
            }
        };
        match room {
            None => fan_out(st.conns.values().map(|c| &c.handle), send),
            Some(room) => {
                if let Some(members) = st.rooms.get(room) {
                    fan_out(members.values(), send);
                }
            }
        }
        drop(st);
        wake_all(wakers);
        d
    }

    /// Closes the adapter (the server is stopping).
    pub fn shutdown(&self) {
        self.set_adapter(None);
    }
}

/// How many receivers ahead of the one being sent to a fan-out asks the CPU to load.
const PREFETCH_AHEAD: usize = 8;

/// Calls `send` on every handle of `handles`. A receiver's state is rarely in the CPU's cache
/// (one miss per receiver was most of a fan-out's time); loading the next few while queueing on
/// this one overlaps those misses.
fn fan_out<'a, I>(handles: I, mut send: impl FnMut(&'a WsHandle))
where
    I: Iterator<Item = &'a WsHandle> + Clone,
{
    let mut ahead = handles.clone();
    ahead
        .by_ref()
        .take(PREFETCH_AHEAD)
        .for_each(WsHandle::prefetch);
    for handle in handles {
        if let Some(next) = ahead.next() {
            next.prefetch();
        }
        send(handle);
    }
}

/// Below this many, receivers are woken right away.
const WAKE_INLINE: usize = 16;

/// Wakes the connection tasks a fan-out queued on: from a task on the runtime when there are
/// many (a wake-up from a runtime thread goes to its local queue; from the JS thread, each one
/// goes through the shared queue and may have to unpark a thread).
fn wake_all(wakers: Vec<std::task::Waker>) {
    if wakers.len() > WAKE_INLINE {
        if let Ok(rt) = tokio::runtime::Handle::try_current() {
            rt.spawn(async move { wakers.into_iter().for_each(std::task::Waker::wake) });
            return;
        }
    }
    wakers.into_iter().for_each(std::task::Waker::wake);
}

/// Takes `id` out of `room`; true when that left the room empty (it is dropped).
fn leave_room(rooms: &mut HashMap<Arc<str>, Members>, room: &str, id: u64) -> bool {
    if let Some(members) = rooms.get_mut(room) {
        members.remove(&id);
        if members.is_empty() {
            rooms.remove(room);
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::{channel, WsDriver, WsLimits};

    fn conn(hub: &Hub, id: u64) -> WsDriver {
        let (h, d) = channel(id, &WsLimits::default());
        hub.add(h);
        d
    }

    fn queued(d: &mut WsDriver) -> usize {
        let mut n = 0;
        while d.shared.tx.try_recv().is_ok() {
            n += 1;
        }
        n
    }

    /// A connection without rooms or metadata takes a few words in the hub's table, and gets
    /// back to that once it has left its rooms and lost its metadata.
    #[test]
    fn idle_connection_entry_stays_small() {
        assert!(
            std::mem::size_of::<Conn>() <= 32,
            "a hub entry grew to {} bytes",
            std::mem::size_of::<Conn>()
        );
        let hub = Hub::default();
        let _a = conn(&hub, 1);
        let unset = |hub: &Hub| {
            let st = hub.read();
            let c = &st.conns[&1];
            (c.rooms.0.is_none(), c.meta.0.is_none())
        };
        assert_eq!(unset(&hub), (true, true));
        assert!(hub.join(1, "a") && hub.join(1, "b"));
        assert!(hub.set_meta(1, "user", Some("ann".into())));
        assert_eq!(unset(&hub), (false, false));
        assert_eq!(hub.rooms_of(1), ["a", "b"]);
        assert!(hub.leave(1, "a"));
        assert_eq!(unset(&hub), (false, false), "still in b");
        assert!(!hub.leave(1, "a"), "already left");
        assert!(hub.leave(1, "b"));
        assert!(
            hub.set_meta(1, "gone", None),
            "removing a missing key is fine"
        );
        assert!(hub.set_meta(1, "user", None));
        assert_eq!(unset(&hub), (true, true));
        assert_eq!(hub.meta(1, "user"), None);
        assert!(!hub.has(1, "b"));
        assert!(hub.join(1, "c"));
        assert_eq!(hub.leave_all(1), 1);
        assert!(unset(&hub).0);
    }

    #[test]
    fn rooms_join_leave_and_sizes() {
        let hub = Hub::default();
        let _a = conn(&hub, 1);
        let _b = conn(&hub, 2);
        assert_eq!(hub.size(), 2);
        assert!(hub.join(1, "lobby"));
        assert!(!hub.join(1, "lobby"), "joining twice is a no-op");
        assert!(hub.join(2, "lobby"));
        assert!(hub.join(2, "games"));
        assert!(!hub.join(9, "lobby"), "unknown connection");
        assert_eq!(hub.room_size("lobby"), 2);
        assert_eq!(
            hub.rooms_of(2),
            vec!["games".to_string(), "lobby".to_string()]
        );
        assert!(hub.has(1, "lobby"));
        assert!(!hub.has(1, "games"));
        assert!(hub.leave(2, "lobby"));
        assert!(!hub.leave(2, "lobby"));
        assert_eq!(hub.room_size("lobby"), 1);
        assert_eq!(
            hub.room_names(),
            vec!["games".to_string(), "lobby".to_string()]
        );
        assert_eq!(hub.leave_all(2), 1);
        assert_eq!(hub.room_names(), vec!["lobby".to_string()]);
    }

    #[test]
    fn remove_leaves_every_room_and_drops_metadata() {
        let hub = Hub::default();
        let _a = conn(&hub, 1);
        hub.join(1, "a");
        hub.join(1, "b");
        assert!(hub.set_meta(1, "user", Some("ann".into())));
        assert_eq!(hub.meta(1, "user").as_deref(), Some("ann"));
        assert!(hub.remove(1));
        assert!(!hub.remove(1));
        assert_eq!(hub.size(), 0);
        assert_eq!(hub.room_size("a"), 0);
        assert!(hub.room_names().is_empty());
        assert_eq!(hub.meta(1, "user"), None);
        assert!(!hub.set_meta(1, "user", Some("x".into())));
    }

    #[test]
    fn metadata_set_get_remove() {
        let hub = Hub::default();
        let _a = conn(&hub, 1);
        hub.set_meta(1, "b", Some("2".into()));
        hub.set_meta(1, "a", Some("1".into()));
        assert_eq!(
            hub.meta_all(1),
            vec![("a".into(), "1".into()), ("b".into(), "2".into())]
        );
        hub.set_meta(1, "a", None);
        assert_eq!(hub.meta(1, "a"), None);
    }

    #[test]
    fn fan_out_to_a_large_room_reaches_each_member_once() {
        let hub = Hub::default();
        // More members than the prefetch window, and a room that is not everyone.
        let mut drivers: Vec<WsDriver> = (1..=50).map(|id| conn(&hub, id)).collect();
        for id in 1..=40 {
            hub.join(id, "big");
        }
        let msg = PreparedMessage::text("hi");
        let d = hub.publish(Some("big"), &msg, &[3, 7, 11, 13, 17, 19, 23, 29, 31, 37]);
        assert_eq!(d.sent, 30);
        for (i, driver) in drivers.iter_mut().enumerate() {
            let id = i as u64 + 1;
            let expect =
                usize::from(id <= 40 && ![3, 7, 11, 13, 17, 19, 23, 29, 31, 37].contains(&id));
            assert_eq!(queued(driver), expect, "connection {id}");
        }
        assert_eq!(hub.publish(None, &msg, &[]).sent, 50);
        assert!(drivers.iter_mut().all(|d| queued(d) == 1));
    }

    #[test]
    fn a_connection_added_again_gets_room_publishes_on_its_new_handle() {
        let hub = Hub::default();
        let mut old = conn(&hub, 1);
        hub.join(1, "lobby");
        let mut new = conn(&hub, 1);
        assert_eq!(hub.size(), 1);
        let d = hub.publish(Some("lobby"), &PreparedMessage::text("hi"), &[]);
        assert_eq!(d.sent, 1);
        assert_eq!(queued(&mut new), 1);
        assert_eq!(queued(&mut old), 0);
    }

    #[test]
    fn publish_reaches_room_members_except_excluded_with_one_frame() {
        let hub = Hub::default();
        let mut drivers: Vec<WsDriver> = (1..=20).map(|id| conn(&hub, id)).collect();
        for id in 1..=10 {
            hub.join(id, "r");
        }
        let msg = PreparedMessage::text("hello");
        let d = hub.publish(Some("r"), &msg, &[3]);
        assert_eq!(d.sent, 9);
        let got: Vec<usize> = drivers.iter_mut().map(queued).collect();
        assert_eq!(got[..10], [1, 1, 0, 1, 1, 1, 1, 1, 1, 1]);
        assert!(got[10..].iter().all(|&n| n == 0));
        // Broadcast to all except a set bigger than the linear-scan threshold.
        let except: Vec<u64> = (1..=12).collect();
        let d = hub.publish(None, &PreparedMessage::binary(&[1, 2]), &except);
        assert_eq!(d.sent, 8);
        assert_eq!(hub.publish(Some("nobody"), &msg, &[]), Delivery::default());
    }

    #[test]
    fn slow_receiver_is_skipped_without_blocking_others() {
        let hub = Hub::new(HubOptions {
            slow_policy: SlowPolicy::Skip,
            max_backpressure: Some(10),
        });
        let mut a = conn(&hub, 1);
        let mut b = conn(&hub, 2);
        let big = PreparedMessage::text("12345678");
        // Fill a's queue (b drains in between).
        hub.get(1).unwrap().send_text("xxxxxx".into()).unwrap();
        let d = hub.publish(None, &big, &[]);
        assert_eq!((d.sent, d.skipped, d.dropped), (1, 1, 0));
        assert_eq!(queued(&mut a), 1, "only the direct send");
        assert_eq!(queued(&mut b), 1);
        assert!(!hub.get(1).unwrap().is_closing(), "skipped, still open");
    }

    #[test]
    fn slow_receiver_is_dropped_under_close_policy() {
        let hub = Hub::new(HubOptions {
            slow_policy: SlowPolicy::Close,
            max_backpressure: Some(10),
        });
        let _a = conn(&hub, 1);
        let mut b = conn(&hub, 2);
        hub.get(1).unwrap().send_text("xxxxxx".into()).unwrap();
        let d = hub.publish(None, &PreparedMessage::text("12345678"), &[]);
        assert_eq!((d.sent, d.skipped, d.dropped), (1, 0, 1));
        assert!(hub.get(1).unwrap().is_closing());
        assert_eq!(queued(&mut b), 1);
    }

    struct Recorder(std::sync::Mutex<Vec<(Option<String>, usize)>>);

    impl Adapter for Recorder {
        fn publish(&self, room: Option<&str>, msg: &PreparedMessage, _except: &[u64]) {
            self.0
                .lock()
                .unwrap()
                .push((room.map(str::to_owned), msg.len()));
        }
        fn remote_room_size(&self, _room: &str) -> AdapterFuture {
            Box::pin(async { Ok(5) })
        }
        fn close(&self) {}
    }

    /// Records the rooms the hub reports as opened or closed, with their size at that moment.
    struct RoomWatcher(std::sync::Mutex<Vec<String>>, std::sync::Weak<Inner>);

    impl Adapter for RoomWatcher {
        fn publish(&self, _room: Option<&str>, _msg: &PreparedMessage, _except: &[u64]) {}
        fn remote_room_size(&self, _room: &str) -> AdapterFuture {
            Box::pin(async { Ok(0) })
        }
        fn room_changed(&self, room: &str) {
            let size = Hub::upgrade(&self.1).map_or(0, |h| h.room_size(room));
            self.0.lock().unwrap().push(format!("{room}={size}"));
        }
        fn close(&self) {}
    }

    #[test]
    fn the_adapter_hears_of_a_rooms_first_member_and_last_leaver() {
        let hub = Hub::default();
        let _a = conn(&hub, 1);
        let _b = conn(&hub, 2);
        let w = Arc::new(RoomWatcher(
            std::sync::Mutex::new(Vec::new()),
            hub.downgrade(),
        ));
        hub.set_adapter(Some(w.clone()));
        hub.join(1, "a");
        hub.join(2, "a");
        hub.join(1, "b");
        hub.join(2, "c");
        assert!(hub.leave(1, "a"));
        assert!(hub.leave(2, "a"));
        assert_eq!(hub.leave_all(1), 1);
        assert!(hub.remove(2));
        assert_eq!(
            *w.0.lock().unwrap(),
            ["a=1", "b=1", "c=1", "a=0", "b=0", "c=0"]
        );
    }

    #[tokio::test]
    async fn adapter_sees_publishes_and_adds_remote_sizes() {
        let hub = Hub::default();
        let _a = conn(&hub, 1);
        hub.join(1, "r");
        let rec = Arc::new(Recorder(std::sync::Mutex::new(Vec::new())));
        hub.set_adapter(Some(rec.clone()));
        hub.publish(Some("r"), &PreparedMessage::text("abc"), &[]);
        hub.deliver_local(Some("r"), &PreparedMessage::text("remote"), &[]);
        assert_eq!(*rec.0.lock().unwrap(), vec![(Some("r".to_string()), 3)]);
        assert_eq!(hub.cluster_room_size("r").await.unwrap(), 6);
    }

    #[tokio::test]
    async fn cluster_members_lists_local_members_with_metadata() {
        let hub = Hub::default();
        let _a = conn(&hub, 7);
        let _b = conn(&hub, 3);
        let _c = conn(&hub, 5);
        hub.join(7, "r");
        hub.join(3, "r");
        hub.join(5, "other");
        hub.set_meta(3, "name", Some("ann".into()));
        hub.set_meta(3, "age", Some("30".into()));
        let all = hub.cluster_members("r").await.unwrap();
        assert_eq!(
            all,
            vec![
                ClusterMember {
                    node: String::new(),
                    id: 3,
                    meta: vec![("age".into(), "30".into()), ("name".into(), "ann".into())],
                    local: true,
                },
                ClusterMember {
                    node: String::new(),
                    id: 7,
                    meta: vec![],
                    local: true,
                },
            ]
        );
        assert!(hub.cluster_members("nobody").await.unwrap().is_empty());
    }
}

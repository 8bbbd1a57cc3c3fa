import { EventEmitter } from 'node:events'
import { type ClientTlsOptions, nativeTlsOptions } from './client.js'
import { fromNative, InvalidArgumentError, WebSocketError } from './errors.js'
import { type Binding, native } from './native.js'
import type { ServerWebSocket } from './server-websocket.js'
import { CLIENT_TLS_FIELDS, checkTlsOptions } from './tls.js'
import { checkOptions, optionKeys } from './validate.js'
import { binaryPayload, PreparedMessage } from './websocket-common.js'

/** A connection, or its id. */
export type HubTarget = ServerWebSocket<unknown> | number

/** Options of {@link Hub.publish} and {@link Hub.broadcast}. */
export interface PublishOptions {
  /** Connections (or ids) on this process that must not receive it, e.g. the sender. */
  except?: HubTarget | Iterable<HubTarget>
}

/** What a publish did on this process. */
export interface PublishResult {
  /** Receivers the message was queued for. */
  sent: number
  /** Receivers over the backpressure limit that missed it (`slowConsumer: 'skip'`). */
  skipped: number
  /** Receivers dropped for being over the limit (`slowConsumer: 'close'`) or closing meanwhile. */
  dropped: number
}

/** Options of a {@link Hub}. */
export interface HubOptions {
  /**
   * What a publish does with a receiver whose send queue is over `maxBackpressure`: `'skip'`
   * (default) leaves it out of this message, `'close'` drops it with close code 1008. Either way
   * the other receivers are never held up.
   */
  slowConsumer?: 'skip' | 'close'
  /** Queued bytes past which a receiver is slow. Default: the WebSocket `maxBackpressure` (64 MiB). */
  maxBackpressure?: number
  /** Relays publishes to other processes; without it the hub is in-process. */
  adapter?: RedisAdapter
}

/** Options of {@link Hub.join} that make it catch a reconnecting client up. */
export interface JoinOptions {
  /**
   * The id of the last message of this room the client saw (it came first in every message,
   * with `stampIds`). The client is sent the room's messages after it from the adapter's history,
   * then joins: it gets what it missed, then the live messages, in order, each once. Needs a
   * `RedisAdapter` with `mode: 'streams'`. `undefined` or `null` (a client that saw nothing
   * yet) joins without a replay: `{ joined, recovered: false, replayed: 0 }`.
   */
  since: string | null | undefined
}

/** What {@link Hub.join} with `since` did. */
export interface JoinResult {
  /** The connection joined the room (false: closed, or already in it; then nothing was replayed). */
  joined: boolean
  /**
   * The history still held every message after `since`, and the client got them all. False
   * when it no longer reaches back that far: nothing was replayed, and the client must catch up
   * another way (e.g. reload the room's state).
   */
  recovered: boolean
  /** Messages replayed to the connection. */
  replayed: number
}

/** Message payloads a hub publishes: a string (text), bytes (binary) or a {@link PreparedMessage}. */
export type HubMessage = string | ArrayBufferLike | ArrayBufferView | PreparedMessage

/** A member of a room on some process, as {@link Hub.clusterMembers} lists it. */
export interface ClusterMember {
  /** The id of the member's process among the adapter's processes (empty without an adapter). */
  process: string
  /** The connection's id on its process (`ws.id` there). */
  id: number
  /** The connection's metadata ({@link Hub.setMeta}). */
  meta: Record<string, string>
  /** True for members on this process: `hub.get(id)` is their connection. */
  local: boolean
}

function idOf(target: HubTarget): number {
  if (typeof target === 'number') return target
  if (target && typeof target === 'object' && typeof target.id === 'number') return target.id
  throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'expected a ServerWebSocket or a connection id')
}

function roomName(room: string): string {
  if (typeof room !== 'string' || room.length === 0) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'a room name must be a non-empty string')
  }
  if (Buffer.byteLength(room) > 0xffff) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'a room name must be at most 65535 bytes')
  }
  return room
}

function exceptIds(except: PublishOptions['except']): number[] | null {
  if (except === undefined || except === null) return null
  if (typeof except === 'number' || (typeof except === 'object' && !(Symbol.iterator in except))) {
    return [idOf(except as HubTarget)]
  }
  return Array.from(except as Iterable<HubTarget>, idOf)
}

/**
 * Rooms and fan-out for the WebSocket connections of a server. Every connection is registered
 * while it is open and leaves all its rooms by itself when it closes (before the `close`
 * handler runs). A publish is framed (and compressed) once in Rust and the same bytes are queued
 * on every receiver, with no per-receiver call into JavaScript.
 *
 * ```ts
 * const hub = new Hub()
 * const server = await serve({
 *   fetch: () => new Response('ok'),
 *   websocket: {
 *     hub,
 *     open(ws) { hub.join(ws, 'lobby') },
 *     message(ws, data) { hub.publish('lobby', data, { except: ws }) },
 *   },
 * })
 * ```
 *
 * A hub belongs to one server; a server without one makes its own (`server.hub`).
 */
export class Hub<Data = unknown> {
  #options: HubOptions
  #native: Binding.BindingHub | undefined
  #lookup: ((id: number) => ServerWebSocket<Data> | undefined) | undefined

  /** Makes a hub; hand it to `serve({ websocket: { hub } })` or `serveWebSocket({ hub })`. */
  constructor(options: HubOptions = {}) {
    checkOptions('new Hub()', options, HUB_KEYS)
    const { slowConsumer = 'skip', maxBackpressure } = options
    if (slowConsumer !== 'skip' && slowConsumer !== 'close') {
      throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', "slowConsumer must be 'skip' or 'close'")
    }
    if (maxBackpressure !== undefined && (!Number.isSafeInteger(maxBackpressure) || maxBackpressure <= 0)) {
      throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'maxBackpressure must be a positive integer')
    }
    if (options.adapter !== undefined && !(options.adapter instanceof RedisAdapter)) {
      throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'adapter must be a RedisAdapter')
    }
    options.adapter?.claim()
    this.#options = { ...options }
  }

  /** @internal The addon's settings. */
  bindingOptions(): Binding.BindingHubOptions {
    return {
      slowPolicy: this.#options.slowConsumer === undefined ? undefined : this.#options.slowConsumer === 'close' ? 1 : 0,
      maxBackpressure: this.#options.maxBackpressure,
    }
  }

  /** @internal True once the hub belongs to a server. */
  get attached(): boolean {
    return this.#native !== undefined
  }

  /** @internal Binds the hub to its server. */
  attach(raw: Binding.BindingHub, lookup: (id: number) => ServerWebSocket<Data> | undefined): void {
    if (this.#native) {
      throw new InvalidArgumentError('ERR_INVALID_STATE', 'this Hub already belongs to a server')
    }
    this.#native = raw
    this.#lookup = lookup
    this.#options.adapter?.attach(raw)
  }

  /** @internal The server stopped. */
  detach(): void {
    this.#options.adapter?.detach()
  }

  get #hub(): Binding.BindingHub {
    if (!this.#native) {
      throw new WebSocketError('ERR_INVALID_STATE', 'this Hub is not attached to a server yet: pass it to serve()')
    }
    return this.#native
  }

  /** The adapter that relays publishes between processes, if any. */
  get adapter(): RedisAdapter | undefined {
    return this.#options.adapter
  }

  /** Number of open connections on this process. */
  get size(): number {
    return this.#native?.size ?? 0
  }

  /** The open connection with this id, if any. */
  get(id: number): ServerWebSocket<Data> | undefined {
    return this.#lookup?.(id)
  }

  /** Adds a connection to a room. Returns false when it is closed or already in the room. */
  join(ws: HubTarget, room: string): boolean
  /**
   * Catches a reconnecting client up, then adds it to the room: with a `RedisAdapter` in
   * `mode: 'streams'`, sends the connection the room's messages after `since` from the history,
   * then joins it, so that it gets each message once and in order. Rejects with
   * `ERR_INVALID_ARG_VALUE` for an id that is not one, `ERR_HUB_ADAPTER` without a streams
   * adapter, and `ETIMEDOUT` when Redis does not answer within `requestTimeout`.
   *
   * ```ts
   * // the client connects with ?since=<the id of the last message it saw>
   * const since = new URL(ws.url, 'http://x').searchParams.get('since')
   * const { recovered } = await hub.join(ws, 'news', { since })
   * ```
   */
  join(ws: HubTarget, room: string, options: JoinOptions): Promise<JoinResult>
  join(ws: HubTarget, room: string, options?: JoinOptions): boolean | Promise<JoinResult> {
    if (options === undefined) return this.#hub.join(idOf(ws), roomName(room))
    // With options the answer is a promise: bad input rejects it rather than throwing.
    try {
      checkOptions('hub.join()', options, JOIN_KEYS)
      const { since } = options
      const id = idOf(ws)
      const name = roomName(room)
      // A client that saw nothing yet (no id to give): a plain join.
      if (since === undefined || since === null) {
        return Promise.resolve({ joined: this.#hub.join(id, name), recovered: false, replayed: 0 })
      }
      if (typeof since !== 'string') {
        throw new InvalidArgumentError(
          'ERR_INVALID_ARG_VALUE',
          'since must be a message id string, like "1733212345678-0"',
        )
      }
      return this.#hub.joinSince(id, name, since).catch((err: unknown) => {
        throw fromNative(err)
      })
    } catch (err) {
      return Promise.reject(err)
    }
  }

  /** Removes a connection from a room. Returns false when it was not in it. */
  leave(ws: HubTarget, room: string): boolean {
    return this.#hub.leave(idOf(ws), roomName(room))
  }

  /** Removes a connection from every room; returns how many it left. */
  leaveAll(ws: HubTarget): number {
    return this.#hub.leaveAll(idOf(ws))
  }

  /** True when the connection is in the room. */
  has(ws: HubTarget, room: string): boolean {
    return this.#hub.has(idOf(ws), roomName(room))
  }

  /** The rooms of a connection, sorted (empty once it closed). */
  rooms(ws: HubTarget): string[] {
    return this.#hub.rooms(idOf(ws))
  }

  /** Members of a room on this process. See {@link clusterRoomSize} for every process. */
  roomSize(room: string): number {
    return this.#hub.roomSize(roomName(room))
  }

  /** Names of the rooms with members on this process, sorted. */
  roomNames(): string[] {
    return this.#hub.roomNames()
  }

  /** The connections of a room on this process. */
  members(room: string): ServerWebSocket<Data>[] {
    const out: ServerWebSocket<Data>[] = []
    for (const id of this.#hub.members(roomName(room))) {
      const ws = this.get(id)
      if (ws) out.push(ws)
    }
    return out
  }

  /**
   * Members of a room on every process: asks the other processes through the adapter (rejects
   * with `ERR_HUB_ADAPTER` when Redis is unreachable, `ETIMEDOUT` when a process does not
   * answer in `requestTimeout`). Without an adapter, same as {@link roomSize}.
   */
  async clusterRoomSize(room: string): Promise<number> {
    try {
      return await this.#hub.clusterRoomSize(roomName(room))
    } catch (err) {
      throw fromNative(err)
    }
  }

  /**
   * Members of a room on every process, with their metadata: this process's first, then the
   * others' as the adapter gathers them (Redis: each process answers on the control channel).
   * Rejects with `ERR_HUB_ADAPTER` when Redis is unreachable and `ETIMEDOUT` when a process that
   * heard the question does not answer within `requestTimeout`. Without an adapter, this
   * process's members only.
   *
   * ```ts
   * hub.setMeta(ws, 'name', 'ann')
   * const everyone = await hub.clusterMembers('lobby') // [{ process, id, meta: { name: 'ann' }, local }]
   * ```
   */
  async clusterMembers(room: string): Promise<ClusterMember[]> {
    let raw: Binding.BindingClusterMember[]
    try {
      raw = await this.#hub.clusterMembers(roomName(room))
    } catch (err) {
      throw fromNative(err)
    }
    return raw.map((m) => {
      const meta: Record<string, string> = {}
      for (let i = 0; i + 1 < m.meta.length; i += 2) meta[m.meta[i] as string] = m.meta[i + 1] as string
      return { process: m.node, id: m.id, meta, local: m.local }
    })
  }

  /** Sets per-connection metadata (`null` removes the key). Returns false when the connection is closed. */
  setMeta(ws: HubTarget, key: string, value: string | null): boolean {
    if (value !== null && typeof value !== 'string') {
      throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'metadata values are strings')
    }
    // Keys travel to other processes with a 16-bit length (clusterMembers).
    if (Buffer.byteLength(String(key)) > 0xffff) {
      throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'a metadata key must be at most 65535 bytes')
    }
    return this.#hub.setMeta(idOf(ws), String(key), value)
  }

  /** One metadata value of a connection. */
  getMeta(ws: HubTarget, key: string): string | undefined {
    return this.#hub.getMeta(idOf(ws), String(key)) ?? undefined
  }

  /** All metadata of a connection. */
  meta(ws: HubTarget): Record<string, string> {
    const flat = this.#hub.meta(idOf(ws))
    const out: Record<string, string> = {}
    for (let i = 0; i + 1 < flat.length; i += 2) out[flat[i] as string] = flat[i + 1] as string
    return out
  }

  #publish(room: string | null, data: HubMessage, options: PublishOptions | undefined): PublishResult {
    const except = exceptIds(options?.except)
    const hub = this.#hub
    let r: number[]
    if (data instanceof PreparedMessage) r = hub.publishPrepared(room, data.native, except)
    else if (typeof data === 'string') r = hub.publish(room, data, except)
    else r = hub.publish(room, binaryPayload(data), except)
    return { sent: r[0] ?? 0, skipped: r[1] ?? 0, dropped: r[2] ?? 0 }
  }

  /**
   * Sends a message to every member of `room`, on this process and (with an adapter) on every
   * other; a string is sent as text, bytes as binary. `except` leaves out connections of this
   * process.
   */
  publish(room: string, data: HubMessage, options?: PublishOptions): PublishResult {
    return this.#publish(roomName(room), data, options)
  }

  /** Sends a message to every connection, on this process and (with an adapter) on every other. */
  broadcast(data: HubMessage, options?: PublishOptions): PublishResult {
    return this.#publish(null, data, options)
  }
}

/** Options of a {@link RedisAdapter}. */
export interface RedisAdapterOptions {
  /**
   * `redis://[user:password@]host[:port]`, or `rediss://...` for Redis over TLS (port 6379 by
   * default for both). Default `redis://127.0.0.1:6379`.
   */
  url?: string
  /** Prefix of the pub/sub channels: hubs with the same one share rooms. Default `hypersock`. */
  channel?: string
  /** How long {@link Hub.clusterRoomSize} waits for the other processes. Default 2 000 ms. */
  requestTimeout?: number
  /** Publishes held while Redis is unreachable; more are not relayed. Default 65 536. */
  maxQueue?: number
  /**
   * TLS settings of a `rediss://` URL, the same as the HTTP client's `tls`: `ca` for a private CA,
   * `cert` and `key` for a server that requires client certificates. Only with `rediss://`.
   */
  tls?: ClientTlsOptions
  /**
   * `'pubsub'` (default): Redis pub/sub, at most once: what a process misses while it is away
   * from Redis is lost. `'streams'`: every message is appended to a Redis Stream that every
   * process reads from where it stopped, the publisher's own included: at least once to each
   * process and exactly once to each member within the history, in one order everywhere, and
   * clients that reconnect can catch up ({@link Hub.join} with `since`). A publish is delivered
   * (locally too) once Redis has stored it, so `publish()` returns zero counts.
   */
  mode?: 'pubsub' | 'streams'
  /**
   * Streams mode: messages the history keeps (approximately: Redis trims in blocks, keeping up to
   * about a hundred more). Default 10 000.
   */
  historySize?: number
  /** Streams mode: drop the whole history after this many ms without a publish. Default: never. */
  historyTtl?: number
  /**
   * Streams mode: start every message members receive with its id and a space
   * (`"1733212345678-0 hello"`; the same bytes before a binary payload), so that a client can
   * resume with the last one it saw. Default false.
   */
  stampIds?: boolean
  /**
   * A Redis Cluster: `redis://` (or, all of them, `rediss://` with `tls` as for `url`) URLs of
   * some of its nodes (the others are found through them), instead of `url`. In pub/sub mode each
   * room has its own sharded channel (`SPUBLISH`/`SSUBSCRIBE`), so rooms spread over the shards;
   * in streams mode the hub's stream lives on the shard of its `{channel}` hash tag. Redirections
   * and failovers are followed by themselves. Over TLS, each node's certificate is verified
   * against the address the cluster gives for it (an IP address unless the nodes announce host
   * names), or against `tls.servername`.
   */
  cluster?: string[]
}

const JOIN_KEYS = optionKeys<JoinOptions>({ since: true })

const AdapterEvent = native.AdapterEventKind
const HUB_KEYS = optionKeys<HubOptions>({ slowConsumer: true, maxBackpressure: true, adapter: true })
const REDIS_ADAPTER_KEYS = optionKeys<RedisAdapterOptions>({
  url: true,
  channel: true,
  requestTimeout: true,
  maxQueue: true,
  tls: true,
  mode: true,
  historySize: true,
  historyTtl: true,
  stampIds: true,
  cluster: true,
})

/**
 * Relays a hub's publishes between processes and machines through Redis pub/sub, so that a
 * publish reaches the room's members on every process exactly once. Messages from one process
 * keep their order.
 *
 * Events: `ready` (subscribed the first time), `error` (a connection to Redis failed or was
 * lost; local delivery goes on, and the adapter retries by itself; without an `error` listener
 * the error is printed as a warning instead of thrown), `reconnect` (subscribed again after an
 * outage). Messages published by other processes during an outage are lost, as with any Redis
 * pub/sub relay.
 */
export class RedisAdapter extends EventEmitter {
  #options: RedisAdapterOptions
  #hub: Binding.BindingHub | undefined
  #connected = false
  #claimed = false
  #ready: Promise<void>
  #resolveReady: () => void = () => {}

  /** Makes an adapter; pass it as `new Hub({ adapter })`. */
  constructor(options: RedisAdapterOptions | string = {}) {
    super()
    // A URL alone, as ioredis and node-redis take it.
    if (typeof options === 'string') options = { url: options }
    checkOptions('new RedisAdapter()', options, REDIS_ADAPTER_KEYS)
    const url = options.url
    if (url !== undefined && !/^rediss?:\/\//i.test(url)) {
      throw new InvalidArgumentError(
        'ERR_INVALID_URL',
        `invalid Redis URL ${JSON.stringify(url)}: use redis:// (or rediss:// for TLS)`,
      )
    }
    checkTlsOptions('tls', options.tls, CLIENT_TLS_FIELDS)
    const overTls = /^rediss:/i.test(url ?? (Array.isArray(options.cluster) ? String(options.cluster[0]) : ''))
    if (options.tls !== undefined && !overTls) {
      throw new InvalidArgumentError(
        'ERR_INVALID_ARG_VALUE',
        'tls was given for a redis:// URL: use rediss:// to connect over TLS',
      )
    }
    const channel = options.channel
    if (channel !== undefined && (typeof channel !== 'string' || channel.length === 0)) {
      throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'channel must be a non-empty string')
    }
    const int = (name: string, n: number | undefined) => {
      if (n !== undefined && (!Number.isInteger(n) || n < 1 || n > 0xffffffff)) {
        throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `${name} must be an integer from 1 to ${0xffffffff}`)
      }
      return n
    }
    const cluster = options.cluster
    if (cluster !== undefined) {
      if (!Array.isArray(cluster) || cluster.length === 0) {
        throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'cluster must be a non-empty array of redis:// URLs')
      }
      if (url !== undefined) {
        throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'give url or cluster, not both')
      }
      for (const node of cluster) {
        if (typeof node !== 'string' || !/^rediss?:\/\//i.test(node)) {
          throw new InvalidArgumentError(
            'ERR_INVALID_URL',
            `invalid Redis Cluster node URL ${JSON.stringify(node)}: use redis:// (or rediss:// for TLS)`,
          )
        }
      }
      const tls = cluster.map((node) => /^rediss:/i.test(node))
      if (tls.some((t) => t !== tls[0])) {
        throw new InvalidArgumentError(
          'ERR_INVALID_ARG_VALUE',
          "the cluster's URLs mix redis:// and rediss://: use one for all",
        )
      }
      if (options.channel !== undefined && /[{}]/.test(options.channel)) {
        throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'with cluster, channel must not contain { or }')
      }
    }
    const mode = options.mode
    if (mode !== undefined && mode !== 'pubsub' && mode !== 'streams') {
      throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', "mode must be 'pubsub' or 'streams'")
    }
    for (const key of ['historySize', 'historyTtl', 'stampIds'] as const) {
      if (options[key] !== undefined && mode !== 'streams') {
        throw new InvalidArgumentError(
          'ERR_INVALID_ARG_VALUE',
          `${key} needs mode: 'streams' (pub/sub keeps no history)`,
        )
      }
    }
    if (options.stampIds !== undefined && typeof options.stampIds !== 'boolean') {
      throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'stampIds must be a boolean')
    }
    this.#options = {
      url,
      channel,
      requestTimeout: int('requestTimeout', options.requestTimeout),
      maxQueue: int('maxQueue', options.maxQueue),
      tls: options.tls,
      mode,
      historySize: int('historySize', options.historySize),
      historyTtl: int('historyTtl', options.historyTtl),
      stampIds: options.stampIds,
      cluster: cluster ? [...cluster] : undefined,
    }
    this.#ready = new Promise((resolve) => {
      this.#resolveReady = resolve
    })
  }

  /** True while subscribed to Redis (publishes from other processes arrive). */
  get connected(): boolean {
    return this.#connected
  }

  /** Resolves once subscribed to Redis for the first time. */
  ready(): Promise<void> {
    return this.#ready
  }

  /** @internal A hub takes the adapter; one adapter serves one hub. */
  claim(): void {
    if (this.#claimed) throw new InvalidArgumentError('ERR_INVALID_STATE', 'this RedisAdapter already belongs to a Hub')
    this.#claimed = true
  }

  /** @internal */
  attach(hub: Binding.BindingHub): void {
    if (this.#hub) throw new InvalidArgumentError('ERR_INVALID_STATE', 'this RedisAdapter is already in use')
    this.#hub = hub
    hub
      .useRedis(
        {
          url: this.#options.url,
          channel: this.#options.channel,
          requestTimeoutMs: this.#options.requestTimeout,
          maxQueue: this.#options.maxQueue,
          tls: nativeTlsOptions(this.#options.tls),
          streams: this.#options.mode === 'streams',
          historySize: this.#options.historySize,
          historyTtlMs: this.#options.historyTtl,
          stampIds: this.#options.stampIds,
          cluster: this.#options.cluster,
        },
        (kind: number, error: Error | null) => this.#event(kind, error),
      )
      .catch((err: unknown) => this.#error(fromNative(err)))
  }

  /** @internal */
  detach(): void {
    this.#hub?.closeAdapter()
    this.#connected = false
  }

  #error(error: unknown): void {
    if (this.listenerCount('error') > 0) this.emit('error', error)
    else console.warn('hypersock: Redis adapter:', (error as Error).message)
  }

  #event(kind: number, error: Error | null): void {
    if (kind === AdapterEvent.Ready) {
      this.#connected = true
      this.#resolveReady()
      this.emit('ready')
    } else if (kind === AdapterEvent.Reconnect) {
      this.#connected = true
      this.emit('reconnect')
    } else if (kind === AdapterEvent.Error) {
      this.#connected = false
      this.#error(fromNative(error))
    }
  }
}

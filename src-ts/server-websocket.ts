import { encodeBody, flattenHeaders, headersFromFlat } from './body.js'
import { fromNative, InvalidArgumentError } from './errors.js'
import type { Hub } from './hub.js'
import { type Binding, native } from './native.js'
import { checkInteger, U32 } from './validate.js'
import { type Batch, u16, u32 } from './wire.js'

/** Kinds of events the addon reports for a WebSocket. */
export const WsEvent = { Open: 0, Message: 1, Close: 2, Upgrade: 3, Ping: 4, Pong: 5, Drain: 6, Error: 7 } as const

/** permessage-deflate (RFC 7692) settings. Sizes in bytes. */
export interface CompressionOptions {
  /** Reset the compressor after every message sent by the server (less memory, worse ratio). Default false. */
  serverNoContextTakeover?: boolean
  /** Ask the client to reset its compressor after every message. Default false. */
  clientNoContextTakeover?: boolean
  /** Largest LZ77 window, 8-15, for what the server sends. Default 15. */
  serverMaxWindowBits?: number
  /** Largest LZ77 window, 8-15, for what the client sends. Default 15. */
  clientMaxWindowBits?: number
  /** Messages shorter than this are sent uncompressed. Default 1024. */
  threshold?: number
  /** zlib level 0-9. Default 1 (fastest). */
  level?: number
  /** zlib memory level 1-9; lower uses less memory per connection. Default 8. */
  memLevel?: number
}

/** Limits and timers shared by the server and client sides. Times in ms, sizes in bytes. */
export interface WebSocketLimits {
  /** Largest message accepted (after decompression); a bigger one closes with 1009. Default 16 MiB. */
  maxMessageSize?: number
  /** Largest single frame accepted; a bigger one closes with 1009. Default `maxMessageSize`. */
  maxFrameSize?: number
  /** Time to wait for the peer's close frame after sending ours. Default 5 000. */
  closeTimeout?: number
  /** Close with 1001 when nothing arrives for this long. Default 0 (off). */
  idleTimeout?: number
  /** Send a ping this often. Default 0 (off). */
  pingInterval?: number
  /** Drop the connection (close 1006) when no pong comes this long after a heartbeat ping. Default 10 000. */
  pongTimeout?: number
  /** Above this many queued bytes `send` returns false and `drain` follows. Default 1 MiB. */
  highWaterMark?: number
  /** Above this many queued bytes the connection is dropped with close 1008 (a consumer that never reads). Default 64 MiB. */
  maxBackpressure?: number
}

/** The upgrade request as the `upgrade` hook sees it. */
export interface UpgradeRequest {
  /** Always `GET`. */
  method: string
  /** The request target, e.g. `/chat?room=a`. */
  url: string
  /** The path of the target, e.g. `/chat`. */
  path: string
  /** The query string parsed. */
  query: URLSearchParams
  /** Request headers. */
  headers: Headers
  /** The client's IP address. */
  remoteAddress: string
  /** The client's port. */
  remotePort: number
  /** Subprotocols the client offered, in order. */
  protocols: string[]
}

/** Accepts the upgrade: an optional subprotocol (one the client offered), extra 101 headers, and `ws.data`. */
export interface UpgradeAccept<Data = unknown> {
  protocol?: string
  headers?: HeadersInit
  data?: Data
}

/** Refuses the upgrade with this HTTP response. */
export interface UpgradeReject {
  status: number
  headers?: HeadersInit
  body?: string | Uint8Array
}

/**
 * What `upgrade` may return: nothing or `true` (accept), `false` (refuse with 403), an
 * {@link UpgradeAccept}, or a refusal as a global `Response` or `{ status, headers, body }`.
 */
export type UpgradeResult<Data = unknown> =
  | undefined
  | boolean
  | UpgradeAccept<Data>
  | UpgradeReject
  | globalThis.Response
  // biome-ignore lint/suspicious/noConfusingVoidType: a hook that returns nothing accepts
  | void

/** Handlers and options of the WebSocket side of {@link serve} and {@link serveWebSocket}. */
export interface WebSocketHandler<Data = unknown> extends WebSocketLimits {
  /**
   * Runs before the 101 with the upgrade request; may be async. Refuse with a status, or accept
   * with a subprotocol, extra headers and per-connection `data`. Without it, every valid
   * upgrade is accepted.
   */
  upgrade?(request: UpgradeRequest): UpgradeResult<Data> | Promise<UpgradeResult<Data>>
  /** A connection opened. */
  open?(ws: ServerWebSocket<Data>): void
  /** A message arrived: a string for text, a Buffer for binary. Called one at a time, in order, per connection. */
  message?(ws: ServerWebSocket<Data>, data: string | Buffer, isBinary: boolean): void
  /** The connection closed; called exactly once, with 1006 when it dropped without a close frame. */
  close?(ws: ServerWebSocket<Data>, code: number, reason: string): void
  /** Everything queued was written after `send` returned false. */
  drain?(ws: ServerWebSocket<Data>): void
  /** A ping arrived (the pong is sent automatically). */
  ping?(ws: ServerWebSocket<Data>, data: Buffer): void
  /** A pong arrived. */
  pong?(ws: ServerWebSocket<Data>, data: Buffer): void
  /** The peer broke the protocol or timed out (`ERR_WS_PROTOCOL`, `ERR_WS_MESSAGE_TOO_BIG`, `ERR_WS_INVALID_UTF8`, `ETIMEDOUT`); `close` follows. */
  error?(ws: ServerWebSocket<Data>, error: Error): void
  /** permessage-deflate: `true` for the defaults, or settings. Default off. */
  compression?: boolean | CompressionOptions
  /** Only these `Origin` values may connect (others get 403); requests without `Origin` are allowed. */
  allowedOrigins?: string[]
  /** Most concurrent WebSocket connections; more get 503. Default 0 (no limit). */
  maxConnections?: number
  /**
   * The {@link Hub} to register connections with (rooms, publish, broadcast). Without it the
   * server makes one with the defaults; either way it is `server.hub`.
   */
  hub?: Hub<Data>
  /** Time the `upgrade` hook may take before the request gets 503. Default 10 000. */
  handshakeTimeout?: number
}

/** Ready states, as in WHATWG `WebSocket`. */
export const ReadyState = { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 } as const

const encoder = new TextEncoder()

/** Defaults and validates limits for the addon. */
export function bindingLimits(o: WebSocketLimits, defaultMaxMessage: number): Binding.BindingWsLimits {
  const maxMessageSize = checkInteger('maxMessageSize', o.maxMessageSize, defaultMaxMessage)
  return {
    maxMessageSize,
    maxFrameSize: checkInteger('maxFrameSize', o.maxFrameSize, maxMessageSize),
    closeTimeoutMs: checkInteger('closeTimeout', o.closeTimeout, 5_000, U32),
    idleTimeoutMs: checkInteger('idleTimeout', o.idleTimeout, 0, U32),
    pingIntervalMs: checkInteger('pingInterval', o.pingInterval, 0, U32),
    pongTimeoutMs: checkInteger('pongTimeout', o.pongTimeout, 10_000, U32),
    highWaterMark: checkInteger('highWaterMark', o.highWaterMark, 1024 * 1024),
    maxBackpressure: checkInteger('maxBackpressure', o.maxBackpressure, 64 * 1024 * 1024),
  }
}

/** Defaults and validates permessage-deflate settings for the addon. */
export function bindingCompression(
  c: boolean | CompressionOptions | undefined,
  enabledByDefault: boolean,
): Binding.BindingDeflateOptions | undefined {
  if (c === false || (c === undefined && !enabledByDefault)) return undefined
  const o = c === true || c === undefined ? {} : c
  const bits = (name: string, v: number | undefined) => {
    const b = v ?? 15
    if (!Number.isInteger(b) || b < 8 || b > 15) {
      throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `${name} must be an integer from 8 to 15`)
    }
    return b
  }
  return {
    serverNoContextTakeover: o.serverNoContextTakeover ?? false,
    clientNoContextTakeover: o.clientNoContextTakeover ?? false,
    serverMaxWindowBits: bits('serverMaxWindowBits', o.serverMaxWindowBits),
    clientMaxWindowBits: bits('clientMaxWindowBits', o.clientMaxWindowBits),
    threshold: checkInteger('threshold', o.threshold, 1024),
    level: checkInteger('level', o.level, 1, 9),
    memLevel: Math.max(1, checkInteger('memLevel', o.memLevel, 8, 9)),
  }
}

/** The addon's options for a server's WebSocket side. */
export function bindingWsOptions(h: WebSocketHandler<never>): Binding.BindingWsOptions {
  return {
    limits: bindingLimits(h, 16 * 1024 * 1024),
    compression: bindingCompression(h.compression, false),
    allowedOrigins: h.allowedOrigins?.map(String),
    maxConnections: checkInteger('maxConnections', h.maxConnections, 0, U32),
    handshakeTimeoutMs: checkInteger('handshakeTimeout', h.handshakeTimeout, 10_000, U32),
    upgradeHook: typeof h.upgrade === 'function',
  }
}

/** Validates a close code and reason the way WHATWG `WebSocket.close` does. */
export function checkClose(code: number | undefined, reason: string | undefined, server: boolean): void {
  if (code !== undefined) {
    const ok =
      code === 1000 ||
      (code >= 3000 && code <= 4999) ||
      (server && code >= 1001 && code <= 1014 && ![1004, 1005, 1006].includes(code))
    if (!Number.isInteger(code) || !ok) {
      throw new InvalidArgumentError(
        'ERR_INVALID_ARG_VALUE',
        `close code ${code} may not be sent; use 1000 or 3000-4999`,
      )
    }
  }
  if (reason !== undefined && encoder.encode(reason).byteLength > 123) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'close reason must be at most 123 bytes of UTF-8')
  }
}

/** Bytes view of any binary message payload. */
export function binaryPayload(data: ArrayBufferLike | ArrayBufferView): Uint8Array {
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  return new Uint8Array(data)
}

/**
 * A message framed (and compressed) once and sendable on any number of sockets with
 * {@link ServerWebSocket.sendPrepared}, without framing or compressing it again. Make one with
 * {@link prepare}.
 */
export class PreparedMessage {
  /** @internal */
  readonly native: Binding.BindingPreparedMessage

  /** @internal */
  constructor(data: string | ArrayBufferLike | ArrayBufferView) {
    this.native = new native.BindingPreparedMessage(typeof data === 'string' ? data : binaryPayload(data))
  }

  /** Payload length in bytes. */
  get length(): number {
    return this.native.length
  }

  /** True for a text message. */
  get isText(): boolean {
    return this.native.isText
  }
}

/**
 * Frames a message once for broadcasting: a string makes a text message, bytes a binary one.
 *
 * ```ts
 * const msg = prepare(JSON.stringify(update))
 * for (const ws of sockets) ws.sendPrepared(msg)
 * ```
 */
export function prepare(data: string | ArrayBufferLike | ArrayBufferView): PreparedMessage {
  return new PreparedMessage(data)
}

/** The server side of a WebSocket connection. */
export class ServerWebSocket<Data = unknown> {
  #native: Binding.BindingWebSocket
  #handle: ReturnType<Binding.BindingWebSocket['sendHandle']>
  #state: number = ReadyState.OPEN
  #headers: Headers | undefined
  /** Per-connection data of your own (set by the `upgrade` hook's `data`, or by you). */
  data: Data = undefined as Data

  /** @internal */
  constructor(raw: Binding.BindingWebSocket) {
    this.#native = raw
    this.#handle = raw.sendHandle()
  }

  /** Connection id, unique within the server. */
  get id(): number {
    return this.#native.id
  }

  /** The request target of the upgrade request, e.g. `/chat?room=a`. */
  get url(): string {
    return this.#native.url
  }

  /** Headers of the upgrade request. */
  get headers(): Headers {
    this.#headers ??= headersFromFlat(this.#native.headers)
    return this.#headers
  }

  /** The client's IP address. */
  get remoteAddress(): string {
    return this.#native.remoteAddress
  }

  /** The client's port. */
  get remotePort(): number {
    return this.#native.remotePort
  }

  /** The subprotocol chosen by the `upgrade` hook, empty when none. */
  get protocol(): string {
    return this.#native.protocol
  }

  /** `OPEN`, `CLOSING` or `CLOSED` (1, 2, 3). */
  get readyState(): number {
    return this.#state
  }

  /** Bytes queued and not yet written to the socket. */
  get bufferedAmount(): number {
    return this.#native.bufferedAmount
  }

  #attempt(send: () => number): boolean {
    try {
      return send() > 0
    } catch (err) {
      const e = fromNative(err) as { code?: string }
      // The connection closed meanwhile (its `close` event is on its way): drop the message.
      if (e.code === 'ERR_WS_CLOSED') return false
      throw e
    }
  }

  /**
   * Sends a text (string) or binary message. Returns false when the queue is over
   * `highWaterMark` (wait for `drain`), or when the message was dropped because the socket is
   * closing or exceeded `maxBackpressure`.
   */
  send(data: string | ArrayBufferLike | ArrayBufferView): boolean {
    if (typeof data === 'string') return this.#attempt(() => native.wsSendText(this.#handle, data))
    const bytes = binaryPayload(data)
    return this.#attempt(() => native.wsSendBinary(this.#handle, bytes))
  }

  /** Sends a message made by {@link prepare}; same result as {@link send}. */
  sendPrepared(message: PreparedMessage): boolean {
    return this.#attempt(() => this.#native.sendPrepared(message.native))
  }

  /** Sends a ping. */
  ping(data: string | ArrayBufferView = ''): void {
    const bytes = typeof data === 'string' ? encoder.encode(data) : binaryPayload(data)
    try {
      this.#native.ping(bytes)
    } catch (err) {
      throw fromNative(err)
    }
  }

  /** Starts the close handshake. The `close` handler runs when it completes. */
  close(code = 1000, reason = ''): void {
    checkClose(code, reason, true)
    if (this.#state !== ReadyState.OPEN) return
    this.#state = ReadyState.CLOSING
    try {
      this.#native.close(code, reason)
    } catch (err) {
      throw fromNative(err)
    }
  }

  /** Drops the connection at once, without a close handshake; `close` runs with 1006. */
  terminate(): void {
    if (this.#state === ReadyState.CLOSED) return
    this.#state = ReadyState.CLOSING
    this.#native.terminate()
  }

  /** @internal */
  markClosed(): void {
    this.#state = ReadyState.CLOSED
  }
}

function targetParts(target: string): { path: string; query: URLSearchParams } {
  const q = target.indexOf('?')
  return q < 0
    ? { path: target, query: new URLSearchParams() }
    : { path: target.slice(0, q), query: new URLSearchParams(target.slice(q + 1)) }
}

async function answerUpgrade<Data>(
  ws: ServerWebSocket<Data>,
  raw: Binding.BindingWebSocket,
  result: UpgradeResult<Data>,
): Promise<void> {
  if (result === false) {
    raw.reject(403, ['content-type', 'text/plain;charset=utf-8'], 'forbidden\n')
  } else if (result instanceof globalThis.Response) {
    const body = result.body === null ? null : Buffer.from(await result.arrayBuffer())
    raw.reject(result.status, flattenHeaders(result.headers), body)
  } else if (result && typeof result === 'object' && 'status' in result) {
    const { data, type } = encodeBody(result.body)
    const headers = flattenHeaders(result.headers)
    if (type && !headers.some((h, i) => i % 2 === 0 && h.toLowerCase() === 'content-type')) {
      headers.push('content-type', type)
    }
    raw.reject(result.status, headers, typeof data === 'string' || data === null ? data : Buffer.from(data))
  } else {
    const accept = result && typeof result === 'object' ? result : {}
    if (accept.data !== undefined) ws.data = accept.data
    raw.accept(accept.protocol ?? null, flattenHeaders(accept.headers))
  }
}

/**
 * Routes the addon's WebSocket events to a {@link WebSocketHandler}. Used by the server.
 * @internal
 */
const EVENT_BINARY = 1
const EVENT_DATA = 2
const EVENT_OBJECT = 4
const EVENT_DATA_OBJECT = 8
const EVENT_REGION = 16

export class WebSocketDispatcher<Data> {
  #handler: WebSocketHandler<Data>
  #sockets = new Map<number, ServerWebSocket<Data>>()
  #upgrading = new Map<number, ServerWebSocket<Data>>()
  #report: (error: unknown) => void

  constructor(handler: WebSocketHandler<Data>, report: (error: unknown) => void) {
    this.#handler = handler
    this.#report = report
  }

  /** Open connections. */
  get count(): number {
    return this.#sockets.size
  }

  /** The open connection with this id. */
  get(id: number): ServerWebSocket<Data> | undefined {
    return this.#sockets.get(id)
  }

  #upgrade(id: number, raw: Binding.BindingWebSocket): void {
    const ws = new ServerWebSocket<Data>(raw)
    this.#upgrading.set(id, ws)
    const { path, query } = targetParts(raw.url)
    const request: UpgradeRequest = {
      method: 'GET',
      url: raw.url,
      path,
      query,
      headers: ws.headers,
      remoteAddress: raw.remoteAddress,
      remotePort: raw.remotePort,
      protocols: raw.offeredProtocols,
    }
    const refuse = (error: unknown) => {
      this.#upgrading.delete(id)
      this.#report(error)
      try {
        raw.reject(500, ['content-type', 'text/plain;charset=utf-8'], 'internal server error\n')
      } catch {
        // already answered
      }
    }
    try {
      const out = this.#handler.upgrade?.(request)
      Promise.resolve(out)
        .then(async (result) => {
          await answerUpgrade(ws, raw, result)
          // A refused upgrade never opens.
          if (result === false || (result && typeof result === 'object' && 'status' in result)) {
            this.#upgrading.delete(id)
          }
        })
        .catch(refuse)
    } catch (error) {
      refuse(error)
    }
  }

  /**
   * Handles a batch from `takeWsEvents`: a buffer of encoded events (see `WsEventQueue::push`
   * in crates/node/src/websocket.rs) followed by the objects that go with some of them.
   */
  drain(batch: unknown[]): void {
    const buf = batch[0] as Batch
    let next = 1
    // Binary messages that arrived together share one ArrayBuffer (flag EVENT_REGION).
    let region: ArrayBuffer | undefined
    for (let o = 0; o + 16 <= buf.length; ) {
      const kind = buf[o] as number
      const flags = buf[o + 1] as number
      const code = u16(buf, o + 2)
      const id = u32(buf, o + 4) + u32(buf, o + 8) * 0x100000000
      const start = o + 16
      o = start + u32(buf, o + 12)
      let data: string | Buffer | Error | undefined
      if (flags & EVENT_REGION) {
        if (flags & EVENT_DATA_OBJECT) region = batch[next++] as ArrayBuffer
        data = Buffer.from(region as ArrayBuffer, u32(buf, start), u32(buf, start + 4))
      } else if (flags & EVENT_DATA_OBJECT) {
        // A large payload: its own string, or an ArrayBuffer (possibly over the addon's memory);
        // an error event's error.
        const value = batch[next++] as string | ArrayBuffer | Error
        data = typeof value === 'string' || value instanceof Error ? value : Buffer.from(value)
      } else if (flags & EVENT_DATA)
        data = flags & EVENT_BINARY ? Buffer.from(buf.subarray(start, o)) : buf.utf8Slice(start, o)
      const object = flags & EVENT_OBJECT ? batch[next++] : undefined
      if (kind === WsEvent.Error) {
        this.event(kind, id, null, data, code)
        // Replies to earlier messages are queued now: the close frame may follow them.
        ;(object as Binding.BindingFailGate | undefined)?.release()
      } else {
        this.event(kind, id, object as Binding.BindingWebSocket | undefined, data, code)
      }
    }
  }

  /** Handles one event from the addon. */
  event = (
    kind: number,
    id: number,
    socket: Binding.BindingWebSocket | null | undefined,
    data: string | Buffer | Error | null | undefined,
    code: number,
  ): void => {
    const h = this.#handler
    try {
      switch (kind) {
        case WsEvent.Upgrade:
          if (socket) this.#upgrade(id, socket)
          return
        case WsEvent.Open: {
          let ws = this.#upgrading.get(id)
          this.#upgrading.delete(id)
          if (!ws && socket) ws = new ServerWebSocket<Data>(socket)
          if (!ws) return
          this.#sockets.set(id, ws)
          h.open?.(ws)
          return
        }
        case WsEvent.Close: {
          const ws = this.#sockets.get(id)
          if (!ws) return
          this.#sockets.delete(id)
          ws.markClosed()
          h.close?.(ws, code, typeof data === 'string' ? data : '')
          return
        }
      }
      const ws = this.#sockets.get(id)
      if (!ws) return
      if (kind === WsEvent.Message) {
        if (data != null && !(data instanceof Error)) h.message?.(ws, data, typeof data !== 'string')
      } else if (kind === WsEvent.Drain) h.drain?.(ws)
      else if (kind === WsEvent.Ping) h.ping?.(ws, data as Buffer)
      else if (kind === WsEvent.Pong) h.pong?.(ws, data as Buffer)
      else if (kind === WsEvent.Error && data instanceof Error) {
        h.error?.(ws, fromNative(data) as Error)
      }
    } catch (error) {
      this.#report(error)
    }
  }
}

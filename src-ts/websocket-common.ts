// What the WebSocket client (websocket.ts), the server side (server-websocket.ts) and the Hub
// (hub.ts) share: event kinds, ready states, limits and compression settings, close-code checks
// and prepared messages.
import { fromNative, InvalidArgumentError, WebSocketError } from './errors.js'
import { type Binding, native } from './native.js'
import { checkInteger, checkOptions, type KeyRecord, optionKeys, U32 } from './validate.js'

/** Kinds of events the addon reports for a WebSocket. */
export const WsEvent = native.WsEventKind

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

/** The keys of {@link WebSocketLimits}, spread into the key lists of the options that extend it. */
export const LIMIT_KEYS: KeyRecord<WebSocketLimits> = {
  maxMessageSize: true,
  maxFrameSize: true,
  closeTimeout: true,
  idleTimeout: true,
  pingInterval: true,
  pongTimeout: true,
  highWaterMark: true,
  maxBackpressure: true,
}

/** The keys of {@link CompressionOptions}. */
export const COMPRESSION_KEYS = optionKeys<CompressionOptions>({
  serverNoContextTakeover: true,
  clientNoContextTakeover: true,
  serverMaxWindowBits: true,
  clientMaxWindowBits: true,
  threshold: true,
  level: true,
  memLevel: true,
})

/** Ready states, as in WHATWG `WebSocket`. */
export const ReadyState = { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 } as const

const encoder = new TextEncoder()

/** Validates limits for the addon; what is not given takes the engine's default for the role. */
export function bindingLimits(o: WebSocketLimits): Binding.BindingWsLimits {
  return {
    maxMessageSize: checkInteger('maxMessageSize', o.maxMessageSize),
    maxFrameSize: checkInteger('maxFrameSize', o.maxFrameSize),
    closeTimeoutMs: checkInteger('closeTimeout', o.closeTimeout, U32),
    idleTimeoutMs: checkInteger('idleTimeout', o.idleTimeout, U32),
    pingIntervalMs: checkInteger('pingInterval', o.pingInterval, U32),
    pongTimeoutMs: checkInteger('pongTimeout', o.pongTimeout, U32),
    highWaterMark: checkInteger('highWaterMark', o.highWaterMark),
    maxBackpressure: checkInteger('maxBackpressure', o.maxBackpressure),
  }
}

/**
 * Validates permessage-deflate settings for the addon: `false` off, `true` on with the defaults,
 * settings (what they leave out takes the defaults), or undefined for the role's default (off on
 * the server, offered by the client).
 */
export function bindingCompression(
  c: boolean | CompressionOptions | undefined,
): boolean | Binding.BindingDeflateOptions | undefined {
  if (c === undefined || typeof c === 'boolean') return c
  checkOptions('compression', c, COMPRESSION_KEYS)
  const bits = (name: string, b: number | undefined) => {
    if (b !== undefined && (!Number.isInteger(b) || b < 8 || b > 15)) {
      throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `${name} must be an integer from 8 to 15`)
    }
    return b
  }
  const memLevel = checkInteger('memLevel', c.memLevel, 9)
  const flag = (name: 'serverNoContextTakeover' | 'clientNoContextTakeover') => {
    const v: unknown = c[name]
    if (v !== undefined && typeof v !== 'boolean') {
      throw new InvalidArgumentError(
        'ERR_INVALID_ARG_TYPE',
        `compression.${name} has the wrong type: expected a boolean, got ${typeof v}`,
      )
    }
    return v
  }
  return {
    serverNoContextTakeover: flag('serverNoContextTakeover'),
    clientNoContextTakeover: flag('clientNoContextTakeover'),
    serverMaxWindowBits: bits('serverMaxWindowBits', c.serverMaxWindowBits),
    clientMaxWindowBits: bits('clientMaxWindowBits', c.clientMaxWindowBits),
    threshold: checkInteger('threshold', c.threshold),
    level: checkInteger('level', c.level, 9),
    memLevel: memLevel === undefined ? undefined : Math.max(1, memLevel),
  }
}

/**
 * What is wrong with a close code and reason by the rules of WHATWG `WebSocket.close` (a server
 * may also send 1001-1014): the code, the reason, or nothing (null).
 */
export function closeProblem(
  code: number | undefined,
  reason: string | undefined,
  server: boolean,
): { part: 'code' | 'reason'; message: string } | null {
  if (code !== undefined) {
    const ok =
      code === 1000 ||
      (code >= 3000 && code <= 4999) ||
      (server && code >= 1001 && code <= 1014 && ![1004, 1005, 1006].includes(code))
    if (!Number.isInteger(code) || !ok) {
      return { part: 'code', message: `close code ${code} may not be sent; use 1000 or 3000-4999` }
    }
  }
  if (reason !== undefined && encoder.encode(reason).byteLength > 123) {
    return { part: 'reason', message: 'close reason must be at most 123 bytes of UTF-8' }
  }
  return null
}

/** Throws `ERR_INVALID_ARG_VALUE` for a close code or reason that may not be sent. */
export function checkClose(code: number | undefined, reason: string | undefined, server: boolean): void {
  const problem = closeProblem(code, reason, server)
  if (problem) throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', problem.message)
}

/** The bytes of a ping or pong payload: a string as UTF-8, or any binary view. */
export function controlPayload(data: string | ArrayBufferView): Uint8Array {
  return typeof data === 'string' ? encoder.encode(data) : binaryPayload(data)
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

/** Per-message options of `send`. */
export interface SendOptions {
  /**
   * With permessage-deflate negotiated: `false` sends this message uncompressed, `true`
   * compresses it even below the `threshold`. Default: compress at or above the threshold.
   * For a message sent in parts, the first part decides for the whole message.
   */
  compress?: boolean
  /**
   * `false` sends this data as a part of a message that stays open (a fragment); later sends
   * continue it, and the one with `fin` true (the default) ends it. Meanwhile other messages
   * on the socket (other sends, Hub broadcasts) wait and follow it; pings and a close do not.
   */
  fin?: boolean
}

/** Called once the message is written to the socket, or with `ERR_WS_CLOSED` if the connection ended first. */
export type SendCallback = (error?: Error) => void

const SEND_KEYS = optionKeys<SendOptions>({ compress: true, fin: true })

type WsHandleRef = ReturnType<Binding.BindingWebSocket['sendHandle']>

/**
 * Sends `data` with per-message options: the addon's send status (1 queued, -1 over the
 * high-water mark, 0 dropped). `text` is the kind of message a first part starts; `whole` sends
 * a message of its own (it waits for an open message in parts instead of continuing it);
 * `notify` is a write marker token passed once the frame is written (0: none).
 */
export function sendWithOptions(
  handle: WsHandleRef,
  data: string | Uint8Array,
  options: SendOptions,
  whole: boolean,
  notify = 0,
  text: boolean = typeof data === 'string',
): number {
  checkOptions('send()', options, SEND_KEYS)
  const compress = options.compress === undefined ? 0 : options.compress ? 1 : 2
  const flags = (options.fin !== false ? 1 : 0) | (whole ? 2 : 0)
  return native.wsSendPart(handle, data, text, flags, compress, notify)
}

/** The error of a send whose connection ended before it was written. */
export function closedError(): Error {
  return new WebSocketError('ERR_WS_CLOSED', 'the WebSocket closed before the message was written')
}

/**
 * Write completion of one socket: each waiter has a marker token, passed by the addon once
 * what the marker stands behind is written (markers behind a message that waited for an open
 * message in parts pass later than ones queued after them), or fails with `ERR_WS_CLOSED` when
 * the connection ends first.
 */
export class WriteWaiters {
  #waiting = new Map<number, SendCallback>()
  #next = 1

  /** A fresh token for `done`; give it to the addon (`wsMarkWritten` or a part's `notify`). */
  token(done: SendCallback): number {
    const token = this.#next
    this.#next = this.#next >= 0xffffffff ? 1 : this.#next + 1
    this.#waiting.set(token, done)
    return token
  }

  /** Calls `done` once everything queued on `handle` so far is written. */
  add(handle: WsHandleRef, done: SendCallback): void {
    const token = this.token(done)
    try {
      native.wsMarkWritten(handle, token)
    } catch {
      this.#waiting.delete(token)
      queueMicrotask(() => done(closedError()))
    }
  }

  /** Forgets `token` (its frame was not queued). */
  drop(token: number): void {
    this.#waiting.delete(token)
  }

  /** Marker `token` passed (the event's data: the token, 4 bytes little-endian). */
  written(data: unknown): void {
    if (!Buffer.isBuffer(data) || data.length < 4) return
    const token = data.readUInt32LE(0)
    const done = this.#waiting.get(token)
    if (!done) return
    this.#waiting.delete(token)
    done()
  }

  /** The connection ended: every waiter fails with `ERR_WS_CLOSED`, in the order they came. */
  closed(): void {
    const left = [...this.#waiting.values()]
    this.#waiting.clear()
    for (const done of left) done(closedError())
  }
}

/**
 * What a socket lends {@link messageStream}: sending one part (`notify`: a write marker token
 * from `waiters`), its write waiters, and failing the connection when the stream is aborted.
 */
export interface PartSink {
  sendPart(data: string | Uint8Array, text: boolean, fin: boolean, notify: number): number
  waiters(): WriteWaiters
  abort(): void
}

/**
 * A `WritableStream` that sends one message in parts: each chunk goes out as a frame at once,
 * closing the stream ends the message. A write that finds the socket's queue over the
 * high-water mark waits until its own frame is written (so other messages waiting behind the
 * open one never hold it up); it fails with `ERR_WS_CLOSED` once the connection is gone.
 * Aborting the stream closes the connection with 1011, as the receiver must not take a
 * cut-off message for a whole one.
 */
export function messageStream(sink: PartSink, text: boolean, release: () => void): WritableStream<string | Uint8Array> {
  const part = (data: string | Uint8Array, fin: boolean): Promise<void> | null => {
    let settle: SendCallback = () => {}
    const written = new Promise<void>((resolve, reject) => {
      settle = (error) => (error ? reject(error) : resolve())
    })
    // Settled either way; only awaited under backpressure.
    written.catch(() => {})
    const waiters = sink.waiters()
    const token = waiters.token(settle)
    let status: number
    try {
      status = sink.sendPart(data, text, fin, token)
    } catch (err) {
      waiters.drop(token)
      throw err
    }
    if (status === 0) {
      waiters.drop(token)
      throw closedError()
    }
    return status < 0 ? written : null
  }
  return new WritableStream<string | Uint8Array>({
    async write(chunk) {
      if (typeof chunk !== 'string' && !ArrayBuffer.isView(chunk)) {
        throw new InvalidArgumentError('ERR_INVALID_ARG_TYPE', 'a message stream takes strings and byte arrays')
      }
      const wait = part(typeof chunk === 'string' ? chunk : binaryPayload(chunk), false)
      if (wait) await wait
    },
    close() {
      release()
      part(new Uint8Array(0), true)
    },
    abort() {
      release()
      sink.abort()
    },
  })
}

/** Runs a send: the addon's status, or 0 when the connection closed meanwhile (its close is on its way). */
export function queued(send: () => number): number {
  try {
    return send()
  } catch (err) {
    const e = fromNative(err) as { code?: string }
    if (e.code === 'ERR_WS_CLOSED') return 0
    throw e
  }
}

/**
 * The send side of one connection, shared by `ServerWebSocket` and the client `WebSocket`:
 * plain sends, sends with options and messages in parts, `stream()`, write completion and the
 * heartbeat times, over the connection's send handle.
 */
export class Sender {
  /** The connection's send handle. */
  readonly handle: WsHandleRef
  #writes: WriteWaiters | undefined
  /** A message sent in parts with `send(data, { fin: false })` is open. */
  #partOpen = false
  /** A message of `stream()` is open. */
  #streamOpen = false

  constructor(handle: WsHandleRef) {
    this.handle = handle
  }

  #waiters(): WriteWaiters {
    this.#writes ??= new WriteWaiters()
    return this.#writes
  }

  /**
   * Sends `payload`; the addon's status (1 queued, -1 over the high-water mark, 0 not queued).
   * After `fin: false`, sends continue that message until one ends it (as in `ws`); otherwise a
   * send with options is a message of its own, which waits behind an open `stream()` message.
   * `callback` runs once the frame is written, or with `ERR_WS_CLOSED`.
   */
  send(payload: string | Uint8Array, options: SendOptions | undefined, callback: SendCallback | undefined): number {
    if (options === undefined && !this.#partOpen) {
      const status = queued(() =>
        typeof payload === 'string'
          ? native.wsSendText(this.handle, payload)
          : native.wsSendBinary(this.handle, payload),
      )
      if (callback) this.#waiters().add(this.handle, callback)
      return status
    }
    const o = options ?? {}
    if (o.fin === false && this.#streamOpen) {
      throw new WebSocketError('ERR_INVALID_STATE', 'a stream() message is open on this socket')
    }
    const whole = !this.#partOpen && o.fin !== false
    const token = callback ? this.#waiters().token(callback) : 0
    let status: number
    try {
      status = queued(() => sendWithOptions(this.handle, payload, o, whole, token))
    } catch (err) {
      if (token) this.#waiters().drop(token)
      throw err
    }
    if (status === 0 && callback) {
      this.#waiters().drop(token)
      queueMicrotask(() => callback(closedError()))
    }
    this.#partOpen = o.fin === false
    return status
  }

  /** A `stream()` message (see {@link messageStream}); `abort` fails the connection. */
  stream(binary: boolean, abort: () => void): WritableStream<string | Uint8Array> {
    if (this.#partOpen || this.#streamOpen) {
      throw new WebSocketError('ERR_INVALID_STATE', 'a message sent in parts is still open on this socket')
    }
    this.#streamOpen = true
    return messageStream(
      {
        sendPart: (data, text, fin, notify) => {
          try {
            return native.wsSendPart(this.handle, data, text, fin ? 1 : 0, 0, notify)
          } catch (err) {
            throw fromNative(err)
          }
        },
        waiters: () => this.#waiters(),
        abort,
      },
      !binary,
      () => {
        this.#streamOpen = false
      },
    )
  }

  /** A write marker passed (its token is the event's data). */
  written(data: unknown): void {
    this.#writes?.written(data)
  }

  /** The connection ended: every write waiter fails with `ERR_WS_CLOSED`. */
  closed(): void {
    this.#writes?.closed()
  }

  /** When the last ping went out, as `Date.now()` would say; undefined before the first. */
  get lastPingAt(): number | undefined {
    return native.wsHeartbeat(this.handle)[0] || undefined
  }

  /** When the last pong arrived, as `Date.now()` would say; undefined before the first. */
  get lastPongAt(): number | undefined {
    return native.wsHeartbeat(this.handle)[1] || undefined
  }

  /** Milliseconds from the last ping to the pong that answered it; undefined before the first. */
  get roundTripTime(): number | undefined {
    const [ping, , rtt] = native.wsHeartbeat(this.handle)
    return ping ? rtt : undefined
  }
}

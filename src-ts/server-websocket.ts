import { fromNative } from './errors.js'
import type { Hub } from './hub.js'
import type { Binding } from './native.js'
import { checkInteger, checkOptions, type KeyRecord, optionKeys, U32 } from './validate.js'
import {
  binaryPayload,
  bindingCompression,
  bindingLimits,
  type CompressionOptions,
  checkClose,
  controlPayload,
  LIMIT_KEYS,
  type PreparedMessage,
  queued,
  ReadyState,
  type SendCallback,
  Sender,
  type SendOptions,
  type WebSocketLimits,
} from './websocket-common.js'
import { headersFromFlat } from './wire/headers.js'

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
  /** The subprotocol to accept, one of {@link UpgradeRequest.protocols}. Default: none. */
  protocol?: string
  /** Extra headers for the `101 Switching Protocols` response. */
  headers?: HeadersInit
  /** The connection's `ws.data` (e.g. the authenticated user). */
  data?: Data
}

/** Refuses the upgrade with this HTTP response. */
export interface UpgradeReject {
  /** The HTTP status of the refusal (e.g. 401, 403). */
  status: number
  /** Headers of the refusal. */
  headers?: HeadersInit
  /** Body of the refusal (a string is sent as `text/plain;charset=UTF-8`). */
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

/** The keys of {@link WebSocketHandler}, for the key lists of options that extend it. */
export const HANDLER_KEYS: KeyRecord<WebSocketHandler> = {
  upgrade: true,
  open: true,
  message: true,
  close: true,
  drain: true,
  ping: true,
  pong: true,
  error: true,
  compression: true,
  allowedOrigins: true,
  maxConnections: true,
  hub: true,
  handshakeTimeout: true,
  ...LIMIT_KEYS,
}
const WEBSOCKET_HANDLER_KEYS = optionKeys<WebSocketHandler>(HANDLER_KEYS)

/** The addon's options for a server's WebSocket side. */
export function bindingWsOptions(h: WebSocketHandler<never>): Binding.BindingWsOptions {
  checkOptions('serve({ websocket })', h, WEBSOCKET_HANDLER_KEYS)
  return {
    limits: bindingLimits(h),
    compression: bindingCompression(h.compression),
    allowedOrigins: h.allowedOrigins?.map(String),
    maxConnections: checkInteger('maxConnections', h.maxConnections, U32),
    handshakeTimeoutMs: checkInteger('handshakeTimeout', h.handshakeTimeout, U32),
    upgradeHook: typeof h.upgrade === 'function',
    // Without a handler, pings and pongs (a heartbeat's, say) do not wake the JS thread.
    pingHandler: typeof h.ping === 'function',
    pongHandler: typeof h.pong === 'function',
  }
}

/** The server side of a WebSocket connection. */
export class ServerWebSocket<Data = unknown> {
  #native: Binding.BindingWebSocket
  /** Made on first use ({@link ServerWebSocket.#send}). */
  #sender: Sender | undefined
  #state: number = ReadyState.OPEN
  #headers: Headers | undefined
  /** Per-connection data of your own (set by the `upgrade` hook's `data`, or by you). */
  data: Data = undefined as Data

  /** @internal */
  constructor(raw: Binding.BindingWebSocket) {
    this.#native = raw
  }

  /** The send state, made on first send: a socket that never sends from JS (one that only gets hub broadcasts, say) holds none. */
  #send(): Sender {
    this.#sender ??= new Sender(this.#native.sendHandle())
    return this.#sender
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

  /**
   * The transport: `'2'` for a WebSocket opened as a stream of an HTTP/2 connection (RFC 8441,
   * as browsers do when the page's connection is HTTP/2), `'1.1'` for an upgraded connection.
   */
  get httpVersion(): '1.1' | '2' {
    return this.#native.httpVersion as '1.1' | '2'
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

  /**
   * Sends a text (string) or binary message. Returns false when the queue is over
   * `highWaterMark` (wait for `drain`), or when the message was dropped because the socket is
   * closing or exceeded `maxBackpressure`.
   *
   * `options` choose compression for this message and send it in parts (`fin: false`); see
   * {@link SendOptions}. `callback` runs once the message is written to the socket, or with an
   * `ERR_WS_CLOSED` error if the connection ends first (so what the message holds can be
   * released either way).
   */
  send(
    data: string | ArrayBufferLike | ArrayBufferView,
    options?: SendOptions | SendCallback,
    callback?: SendCallback,
  ): boolean {
    if (typeof options === 'function') {
      callback = options
      options = undefined
    }
    const payload = typeof data === 'string' ? data : binaryPayload(data)
    return this.#send().send(payload, options, callback) > 0
  }

  /**
   * Sends like {@link send} and resolves once the message is written to the socket; rejects
   * with `ERR_WS_CLOSED` if the connection ends first.
   */
  sendAsync(data: string | ArrayBufferLike | ArrayBufferView, options?: SendOptions): Promise<void> {
    return new Promise((resolve, reject) => {
      this.send(data, options, (error) => (error ? reject(error) : resolve()))
    })
  }

  /**
   * A `WritableStream` that sends one message in parts, each chunk as a frame as it comes
   * (strings or bytes; `binary` chooses the message's kind, default true). Closing the stream
   * ends the message; writes wait while the queue is over `highWaterMark`. Other messages wait
   * until it ends. Aborting the stream closes the connection with 1011.
   */
  stream(options: { binary?: boolean } = {}): WritableStream<string | Uint8Array> {
    return this.#send().stream(options.binary !== false, () => this.close(1011, 'message stream aborted'))
  }

  /** When this socket last sent a ping (heartbeat or {@link ping}), as `Date.now()` would say; undefined before the first. */
  get lastPingAt(): number | undefined {
    return this.#native.heartbeat()[0] || undefined
  }

  /** When the last pong arrived, as `Date.now()` would say; undefined before the first. */
  get lastPongAt(): number | undefined {
    return this.#native.heartbeat()[1] || undefined
  }

  /** Milliseconds from the last ping to the pong that answered it (the heartbeat's round trip); undefined before the first. */
  get roundTripTime(): number | undefined {
    const [ping, , rtt] = this.#native.heartbeat()
    return ping ? rtt : undefined
  }

  /** Sends a message made by {@link prepare}; same result as {@link send}. */
  sendPrepared(message: PreparedMessage): boolean {
    return queued(() => this.#native.sendPrepared(message.native)) > 0
  }

  /** Sends a ping. */
  ping(data: string | ArrayBufferView = ''): void {
    this.#control(() => this.#native.ping(controlPayload(data)))
  }

  /** Sends an unsolicited pong (a one-way heartbeat); pings are answered by themselves. */
  pong(data: string | ArrayBufferView = ''): void {
    this.#control(() => this.#native.pong(controlPayload(data)))
  }

  #control(send: () => void): void {
    try {
      send()
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
    this.#sender?.closed()
  }

  /** @internal A write marker passed (its token is the event's data). */
  written(data: unknown): void {
    this.#sender?.written(data)
  }
}

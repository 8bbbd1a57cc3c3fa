import { type Client, getDefaultClient, nativeClient, peekDefaultClient } from './client.js'
import { fromNative, InvalidArgumentError, WebSocketError } from './errors.js'
import { type Binding, native } from './native.js'
import { type ProxyOptions, proxyOptions } from './proxy.js'
import { CLIENT_TLS_FIELDS, checkTlsOptions } from './tls.js'
import { checkInteger, checkOptions, optionKeys, U32 } from './validate.js'
import { headersFromFlat } from './wire/headers.js'

/** The WebSocket client's TLS options: the HTTP client's, less those it has no use for. */
const WS_TLS_FIELDS = Object.fromEntries(
  Object.entries(CLIENT_TLS_FIELDS).filter(([k]) =>
    ['ca', 'rejectUnauthorized', 'servername', 'cert', 'key'].includes(k),
  ),
)

import {
  binaryPayload,
  bindingCompression,
  bindingLimits,
  type CompressionOptions,
  closedError,
  closeProblem,
  controlPayload,
  LIMIT_KEYS,
  ReadyState,
  type SendCallback,
  Sender,
  type SendOptions,
  type WebSocketLimits,
  WsEvent,
} from './websocket-common.js'

/** Options of the hypersock `WebSocket` beyond the WHATWG constructor. */
export interface WebSocketOptions extends WebSocketLimits {
  /** Extra headers for the handshake request. */
  headers?: HeadersInit
  /** Time allowed for connect plus handshake, in ms. Default 10 000. */
  handshakeTimeout?: number
  /**
   * Offer permessage-deflate: `true` (the default, as browsers do), `false`, or settings. Here
   * `clientMaxWindowBits`/`clientNoContextTakeover` limit what this client sends and
   * `serverMaxWindowBits`/`serverNoContextTakeover` are requested from the server.
   */
  compression?: boolean | CompressionOptions
  /** TLS settings for `wss://`. Certificates and host names are verified against the webpki roots plus `ca`. */
  tls?: {
    /** Extra trusted CA certificates, PEM. */
    ca?: string | Buffer | Array<string | Buffer>
    /** Set to false to accept any certificate (tests only). Default true. */
    rejectUnauthorized?: boolean
    /** Server name for SNI and verification instead of the URL's host. */
    servername?: string
    /** Client certificate chain (PEM) for mutual TLS. */
    cert?: string | Buffer
    /** Private key (PEM) of `cert`. */
    key?: string | Buffer
  }
  /**
   * HTTP proxy, as the HTTP client's `proxy` option: a URL (user info sent as basic
   * `Proxy-Authorization`), `'env'` to read `HTTP_PROXY` (for `ws://`), `HTTPS_PROXY` (for
   * `wss://`) and `NO_PROXY`, or `{ url, env, noProxy }`. Both schemes go through a `CONNECT`
   * tunnel. Default: none (the environment is read only with `'env'`).
   */
  proxy?: ProxyOptions
  /**
   * Follow a 301, 302, 303, 307 or 308 answer to the handshake to its `Location`, as `ws` does
   * (`http:`/`https:` targets become `ws:`/`wss:`). Default false: a redirect fails the
   * handshake. A redirect to another origin drops the `Authorization` and `Cookie` headers;
   * `wss:` to `ws:` is refused (`ERR_REDIRECT_REFUSED`). `url` tells where it ended.
   */
  followRedirects?: boolean
  /** Most redirects followed with `followRedirects`; one more fails with `ERR_TOO_MANY_REDIRECTS`. Default 10. */
  maxRedirects?: number
  /**
   * Open the WebSocket as a stream of an HTTP/2 connection (RFC 8441) of `client`, as browsers
   * do: `'auto'` when the client already holds an HTTP/2 connection to the origin (`wss://`)
   * whose server takes extended CONNECT, else over HTTP/1.1 as usual; `'always'` over HTTP/2
   * only (ALPN for `wss://`, prior knowledge for `ws://`), failing otherwise; `'never'` over
   * HTTP/1.1. Over HTTP/2 the client's TLS settings apply, not `tls` or `proxy`, so the default
   * is `'auto'` without `tls` and `proxy`, and `'never'` with either.
   */
  http2?: 'auto' | 'always' | 'never'
  /** The client whose HTTP/2 connections `http2` uses. Default: the shared client of `fetch`. */
  client?: Client
}

const WEBSOCKET_KEYS = optionKeys<WebSocketOptions>({
  http2: true,
  client: true,
  followRedirects: true,
  maxRedirects: true,
  headers: true,
  handshakeTimeout: true,
  compression: true,
  tls: true,
  proxy: true,
  ...LIMIT_KEYS,
})

/** An HTTP token (RFC 9110 section 5.6.2): what a subprotocol must be. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/

/**
 * The subprotocols argument as browsers read it (WebIDL `DOMString or sequence<DOMString>`): any
 * iterable other than a string is the list, anything else one subprotocol; each is converted to
 * a string (a Symbol cannot be: `TypeError`).
 */
function subprotocolList(protocols: unknown): string[] {
  if (protocols === undefined) return []
  const items =
    typeof protocols === 'object' && protocols !== null && Symbol.iterator in protocols
      ? Array.from(protocols as Iterable<unknown>)
      : [protocols]
  return items.map((p) => {
    if (typeof p === 'symbol') throw new TypeError('a subprotocol cannot be a Symbol')
    return String(p)
  })
}

/**
 * A WHATWG exception (`SyntaxError`, `InvalidAccessError`, ...) that also carries the stable
 * hypersock `code` every other error has.
 */
function domException(message: string, name: string, code: string): DOMException {
  const e = new DOMException(message, name)
  Object.defineProperty(e, 'code', { value: code, enumerable: true })
  return e
}

/** How binary messages are given to `message` listeners. */
export type BinaryType = 'blob' | 'arraybuffer' | 'nodebuffer'

/** The `close` event: `code`, `reason`, `wasClean`. */
export class CloseEvent extends Event {
  /** The close code: the Close frame's, 1005 when it had none, 1006 when the connection was lost without one. */
  readonly code: number
  /** The close reason the peer gave (UTF-8 text, may be empty). */
  readonly reason: string
  /** False when the connection was lost without a closing handshake (code 1006). */
  readonly wasClean: boolean
  /** Makes a close event, as `new CloseEvent('close', { code, reason, wasClean })` in browsers. */
  constructor(type: string, init: { code?: number; reason?: string; wasClean?: boolean } = {}) {
    super(type)
    this.code = init.code ?? 0
    this.reason = init.reason ?? ''
    this.wasClean = init.wasClean ?? false
  }
}

/** The `error` event; `error` holds the {@link HypersockError}. */
export class ErrorEvent extends Event {
  /** The error that caused the event. */
  readonly error: unknown
  /** A description of the error (its message). */
  readonly message: string
  /** Makes an error event carrying `init.error` and `init.message`. */
  constructor(type: string, init: { error?: unknown; message?: string } = {}) {
    super(type)
    this.error = init.error
    this.message = init.message ?? ''
  }
}

type Handler<E extends Event> = ((event: E) => void) | null

function flatHeaders(init: HeadersInit | undefined): string[] {
  const out: string[] = []
  if (init) for (const [name, value] of new Headers(init)) out.push(name, value)
  return out
}

/** Unread messages of one iterator. */
interface Backlog {
  items: Array<IteratorResult<string | Buffer>>
  /** Their length (bytes of Buffers, UTF-16 units of strings). */
  bytes: number
}

/** How much one iterator holds unread before the socket stops reading. */
const ITERATOR_MAX_MESSAGES = 256
const ITERATOR_MAX_BYTES = 8 * 1024 * 1024

/**
 * A WebSocket client with the WHATWG API (an `EventTarget` with `onopen`, `onmessage`, `onclose`,
 * `onerror`, `readyState`, `bufferedAmount`, `binaryType`), plus an async iterator of messages.
 *
 * ```ts
 * const ws = new WebSocket('ws://127.0.0.1:8080/chat')
 * ws.onopen = () => ws.send('hi')
 * for await (const msg of ws) console.log(msg)
 * ```
 */
export class WebSocket extends EventTarget {
  /** `readyState` while the opening handshake runs (0). */
  static readonly CONNECTING = ReadyState.CONNECTING
  /** `readyState` once open: messages can be sent (1). */
  static readonly OPEN = ReadyState.OPEN
  /** `readyState` while the closing handshake runs (2). */
  static readonly CLOSING = ReadyState.CLOSING
  /** `readyState` once closed, or when the connection failed (3). */
  static readonly CLOSED = ReadyState.CLOSED
  /** {@link WebSocket.CONNECTING} (0), on the instance as well. */
  readonly CONNECTING = ReadyState.CONNECTING
  /** {@link WebSocket.OPEN} (1), on the instance as well. */
  readonly OPEN = ReadyState.OPEN
  /** {@link WebSocket.CLOSING} (2), on the instance as well. */
  readonly CLOSING = ReadyState.CLOSING
  /** {@link WebSocket.CLOSED} (3), on the instance as well. */
  readonly CLOSED = ReadyState.CLOSED

  /** The URL as resolved; once open, where `followRedirects` led. */
  get url(): string {
    return this.#url
  }
  #url: string
  /** How binary messages are delivered to `message` listeners. Default `'blob'` as in WHATWG. */
  binaryType: BinaryType = 'blob'
  #state: number = ReadyState.CONNECTING
  #native: Binding.BindingWebSocket | undefined
  #protocol = ''
  #responseHeaders: Headers | undefined
  #pendingClose: [number, string] | undefined
  #keepAlive: ReturnType<typeof setInterval> | undefined
  #handlers = new Map<string, EventListener>()
  /** The open iterators: how each takes an item, and what it holds unread (see `[Symbol.asyncIterator]`). */
  #iterators = new Map<(item: IteratorResult<string | Buffer>) => void, Backlog>()
  /** Reading from the peer is held because an iterator's backlog is full. */
  #readingHeld = false
  /** `terminate()` was called while connecting. */
  #terminated = false
  /** The send side, once open. */
  #sender: Sender | undefined
  /** Sends waiting for a Blob's bytes, in order; later sends queue behind them. */
  #blobChain: Promise<void> | null = null

  /** Connects to `url` (`ws:` or `wss:`), offering `protocols` as subprotocols; `options` go beyond the WHATWG API. */
  constructor(url: string | URL, protocols?: string | string[], options: WebSocketOptions = {}) {
    super()
    checkOptions('new WebSocket()', options, WEBSOCKET_KEYS)
    let parsed: URL
    try {
      parsed = new URL(String(url))
    } catch {
      throw domException(`invalid URL ${JSON.stringify(String(url))}`, 'SyntaxError', 'ERR_INVALID_URL')
    }
    if (parsed.protocol === 'http:') parsed.protocol = 'ws:'
    if (parsed.protocol === 'https:') parsed.protocol = 'wss:'
    if (parsed.protocol !== 'ws:' && parsed.protocol !== 'wss:') {
      throw domException(
        `WebSocket URL must use ws: or wss: (got ${parsed.protocol})`,
        'SyntaxError',
        'ERR_INVALID_URL',
      )
    }
    if (parsed.hash) parsed.hash = ''
    this.#url = parsed.href
    const list = subprotocolList(protocols)
    const bad = list.find((p) => !TOKEN.test(p))
    if (bad !== undefined) {
      throw domException(
        `subprotocol ${JSON.stringify(bad)} is not a valid token`,
        'SyntaxError',
        'ERR_INVALID_ARG_VALUE',
      )
    }
    if (new Set(list).size !== list.length) {
      throw domException('subprotocols must not repeat', 'SyntaxError', 'ERR_INVALID_ARG_VALUE')
    }
    checkTlsOptions('tls', options.tls, WS_TLS_FIELDS)
    const dial = {
      protocols: list,
      headers: flatHeaders(options.headers),
      handshakeTimeoutMs: checkInteger('handshakeTimeout', options.handshakeTimeout, U32),
      limits: bindingLimits(options),
      compression: bindingCompression(options.compression),
      ca: options.tls?.ca === undefined ? undefined : [options.tls.ca].flat().map(String).join('\n'),
      rejectUnauthorized: options.tls?.rejectUnauthorized,
      servername: options.tls?.servername,
      cert: options.tls?.cert === undefined ? undefined : String(options.tls.cert),
      key: options.tls?.key === undefined ? undefined : String(options.tls.key),
      ...proxyOptions(options.proxy),
      followRedirects: options.followRedirects === undefined ? undefined : !!options.followRedirects,
      maxRedirects: checkInteger('maxRedirects', options.maxRedirects, U32),
      http2: options.http2,
    }
    // The default rides a connection the client already holds, unless this socket has TLS or
    // proxy settings of its own, which only its own connection can honour.
    const http2 = options.http2 ?? (options.tls || options.proxy ? 'never' : 'auto')
    if (http2 !== 'auto' && http2 !== 'always' && http2 !== 'never') {
      throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', "http2 must be 'auto', 'always' or 'never'")
    }
    dial.http2 = http2
    // 'auto' needs a client that exists: one never made holds no connection to ride.
    const over =
      http2 === 'never'
        ? undefined
        : http2 === 'auto'
          ? (options.client ?? peekDefaultClient())
          : (options.client ?? getDefaultClient())
    const client = over ? nativeClient(over).requestHandle() : undefined
    this.#keepAlive = setInterval(() => {}, 1 << 30)
    let dialing: Promise<Binding.BindingWebSocket>
    try {
      dialing = native.dialWebSocket(this.#url, dial, client)
    } catch (err) {
      clearInterval(this.#keepAlive)
      throw fromNative(err)
    }
    dialing.then(
      (raw) => this.#opened(raw),
      (err: unknown) => this.#failed(fromNative(err)),
    )
  }

  #opened(raw: Binding.BindingWebSocket): void {
    this.#native = raw
    this.#sender = new Sender(raw.sendHandle())
    this.#url = raw.url
    this.#protocol = raw.protocol
    raw.start(this.#onEvent)
    if (this.#terminated) {
      raw.terminate()
      return
    }
    if (this.#pendingClose) {
      this.#state = ReadyState.CLOSING
      raw.close(...this.#pendingClose)
      return
    }
    this.#state = ReadyState.OPEN
    this.dispatchEvent(new Event('open'))
  }

  #failed(error: unknown): void {
    this.#state = ReadyState.CLOSED
    clearInterval(this.#keepAlive)
    const message = error instanceof Error ? error.message : String(error)
    this.dispatchEvent(new ErrorEvent('error', { error, message }))
    this.dispatchEvent(new CloseEvent('close', { code: 1006, reason: '', wasClean: false }))
    this.#finishIterators()
  }

  #onEvent = (
    kind: number,
    _id: number,
    _s: unknown,
    data: string | Buffer | Error | null | undefined,
    code: number,
  ): void => {
    if (kind === WsEvent.Message && data != null && !(data instanceof Error)) {
      for (const sink of this.#iterators.keys()) sink({ value: data, done: false })
      this.dispatchEvent(new MessageEvent('message', { data: this.#convert(data) }))
    } else if ((kind === WsEvent.Ping || kind === WsEvent.Pong) && Buffer.isBuffer(data)) {
      this.dispatchEvent(new MessageEvent(kind === WsEvent.Ping ? 'ping' : 'pong', { data }))
    } else if (kind === WsEvent.Error && data instanceof Error) {
      const error = fromNative(data)
      this.dispatchEvent(new ErrorEvent('error', { error, message: (error as Error).message }))
    } else if (kind === WsEvent.Written) {
      this.#sender?.written(data)
    } else if (kind === WsEvent.Close) {
      this.#state = ReadyState.CLOSED
      clearInterval(this.#keepAlive)
      this.#sender?.closed()
      const reason = typeof data === 'string' ? data : ''
      this.dispatchEvent(new CloseEvent('close', { code, reason, wasClean: code !== 1006 }))
      this.#finishIterators()
    }
  }

  #convert(data: string | Buffer): unknown {
    if (typeof data === 'string' || this.binaryType === 'nodebuffer') return data
    if (this.binaryType === 'arraybuffer') return data.buffer.slice(data.byteOffset, data.byteOffset + data.byteLength)
    return new Blob([data as Uint8Array<ArrayBuffer>])
  }

  #finishIterators(): void {
    for (const sink of this.#iterators.keys()) sink({ value: undefined, done: true })
  }

  /** `CONNECTING`, `OPEN`, `CLOSING` or `CLOSED` (0-3). */
  get readyState(): number {
    return this.#state
  }

  /** The subprotocol the server chose, empty when none. */
  get protocol(): string {
    return this.#protocol
  }

  /** Extensions the server accepted (`Sec-WebSocket-Extensions`), empty when none. */
  get extensions(): string {
    return this.#native?.extensions ?? ''
  }

  /** Once open, `'2'` when the WebSocket is a stream of an HTTP/2 connection (see `http2`), else `'1.1'`. */
  get httpVersion(): '1.1' | '2' {
    return (this.#native?.httpVersion ?? '1.1') as '1.1' | '2'
  }

  /** Headers of the server's 101 response, once open. */
  get responseHeaders(): Headers | undefined {
    if (!this.#native) return undefined
    this.#responseHeaders ??= headersFromFlat(this.#native.headers)
    return this.#responseHeaders
  }

  /** Bytes queued and not yet written. */
  get bufferedAmount(): number {
    return this.#native?.bufferedAmount ?? 0
  }

  #open(): Binding.BindingWebSocket | undefined {
    if (this.#state === ReadyState.CONNECTING || !this.#native) {
      throw new WebSocketError('ERR_INVALID_STATE', 'the WebSocket is still connecting; wait for open')
    }
    return this.#state === ReadyState.OPEN ? this.#native : undefined
  }

  /**
   * Sends a text (string) or binary message. Throws `ERR_INVALID_STATE` while connecting.
   *
   * Beyond WHATWG: `options` choose compression for this message and send it in parts
   * (`fin: false`; see {@link SendOptions}); `callback` runs once the message is written to the
   * socket, or with an `ERR_WS_CLOSED` error if the connection ends first.
   */
  send(
    data: string | ArrayBufferLike | ArrayBufferView | Blob,
    options?: SendOptions | SendCallback,
    callback?: SendCallback,
  ): void {
    if (typeof options === 'function') {
      callback = options
      options = undefined
    }
    const raw = this.#open()
    if (!raw) {
      if (callback) queueMicrotask(() => callback(closedError()))
      return
    }
    if (data instanceof Blob || this.#blobChain) {
      // A Blob's bytes come later: it, and every send after it, wait their turn.
      const o = options
      const done = callback
      const chain: Promise<void> = (this.#blobChain ?? Promise.resolve())
        .then(async () => {
          const bytes = data instanceof Blob ? new Uint8Array(await data.arrayBuffer()) : data
          if (this.#state !== ReadyState.OPEN) done?.(closedError())
          else this.#sendNow(bytes, o, done)
        })
        .catch((err: unknown) => done?.(err as Error))
        .finally(() => {
          if (this.#blobChain === chain) this.#blobChain = null
        })
      this.#blobChain = chain
      return
    }
    this.#sendNow(data, options, callback)
  }

  /** Sends now: the socket is open (the sender exists once it is). */
  #sendNow(
    data: string | ArrayBufferLike | ArrayBufferView,
    options: SendOptions | undefined,
    callback: SendCallback | undefined,
  ): void {
    // A socket that closed meanwhile drops the message (WHATWG); a callback hears of it.
    this.#sender?.send(typeof data === 'string' ? data : binaryPayload(data), options, callback)
  }

  /**
   * Sends like {@link send} and resolves once the message is written to the socket; rejects
   * with `ERR_WS_CLOSED` if the connection ends first.
   */
  sendAsync(data: string | ArrayBufferLike | ArrayBufferView | Blob, options?: SendOptions): Promise<void> {
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
    const raw = this.#open()
    if (!raw) throw new WebSocketError('ERR_WS_CLOSED', 'the WebSocket is closing')
    return (this.#sender as Sender).stream(options.binary !== false, () => {
      if (this.#state !== ReadyState.OPEN) return
      this.#state = ReadyState.CLOSING
      raw.close(1011, 'message stream aborted')
    })
  }

  /** When this socket last sent a ping (heartbeat or {@link ping}), as `Date.now()` would say; undefined before the first. */
  get lastPingAt(): number | undefined {
    return this.#sender?.lastPingAt
  }

  /** When the last pong arrived, as `Date.now()` would say; undefined before the first. */
  get lastPongAt(): number | undefined {
    return this.#sender?.lastPongAt
  }

  /** Milliseconds from the last ping to the pong that answered it; undefined before the first. */
  get roundTripTime(): number | undefined {
    return this.#sender?.roundTripTime
  }

  /**
   * Sends a ping (at most 125 bytes); the server's pong arrives as a `pong` event. Throws
   * `ERR_INVALID_STATE` while connecting.
   */
  ping(data: string | ArrayBufferView = ''): void {
    this.#control(data, (raw, bytes) => raw.ping(bytes))
  }

  /** Sends an unsolicited pong (a one-way heartbeat); pings are answered by themselves. */
  pong(data: string | ArrayBufferView = ''): void {
    this.#control(data, (raw, bytes) => raw.pong(bytes))
  }

  #control(data: string | ArrayBufferView, send: (raw: Binding.BindingWebSocket, bytes: Uint8Array) => void): void {
    if (this.#state === ReadyState.CONNECTING || !this.#native) {
      throw new WebSocketError('ERR_INVALID_STATE', 'the WebSocket is still connecting; wait for open')
    }
    if (this.#state !== ReadyState.OPEN) return
    const bytes = controlPayload(data)
    try {
      send(this.#native, bytes)
    } catch (err) {
      const e = fromNative(err) as { code?: string }
      if (e.code !== 'ERR_WS_CLOSED') throw e
    }
  }

  /**
   * Drops the connection at once, without a close handshake (as `ws`'s `terminate`): `close`
   * follows with 1006.
   */
  terminate(): void {
    if (this.#state === ReadyState.CLOSED) return
    if (!this.#native) {
      this.#pendingClose = undefined
      this.#state = ReadyState.CLOSING
      this.#terminated = true
      return
    }
    this.#state = ReadyState.CLOSING
    this.#native.terminate()
  }

  /** Starts the close handshake with `code` (1000 or 3000-4999) and `reason` (<= 123 bytes). */
  close(code?: number, reason?: string): void {
    // WHATWG: a code it may not send is an InvalidAccessError, a long reason a SyntaxError.
    const problem = closeProblem(code, reason, false)
    if (problem) {
      const name = problem.part === 'code' ? 'InvalidAccessError' : 'SyntaxError'
      throw domException(problem.message, name, 'ERR_INVALID_ARG_VALUE')
    }
    if (this.#state === ReadyState.CLOSING || this.#state === ReadyState.CLOSED) return
    const args: [number, string] = [code ?? 1000, reason ?? '']
    if (!this.#native) {
      this.#pendingClose = args
      return
    }
    this.#state = ReadyState.CLOSING
    this.#native.close(...args)
  }

  #setHandler<E extends Event>(type: string, fn: Handler<E>): void {
    const old = this.#handlers.get(type)
    if (old) this.removeEventListener(type, old)
    this.#handlers.delete(type)
    if (typeof fn === 'function') {
      const listener = fn as unknown as EventListener
      this.#handlers.set(type, listener)
      this.addEventListener(type, listener)
    }
  }

  /** Called when the connection opens (the `open` event); `null` for none. */
  get onopen(): Handler<Event> {
    return (this.#handlers.get('open') as Handler<Event>) ?? null
  }
  /** Replaces the `open` handler; `null` removes it. */
  set onopen(fn: Handler<Event>) {
    this.#setHandler('open', fn)
  }
  /** Called for each message (the `message` event; `data` is a string or binary as `binaryType` says). */
  get onmessage(): Handler<MessageEvent> {
    return (this.#handlers.get('message') as unknown as Handler<MessageEvent>) ?? null
  }
  /** Replaces the `message` handler; `null` removes it. */
  set onmessage(fn: Handler<MessageEvent>) {
    this.#setHandler('message', fn)
  }
  /** Called once the connection is closed (the `close` event, a {@link CloseEvent}). */
  get onclose(): Handler<CloseEvent> {
    return (this.#handlers.get('close') as unknown as Handler<CloseEvent>) ?? null
  }
  /** Replaces the `close` handler; `null` removes it. */
  set onclose(fn: Handler<CloseEvent>) {
    this.#setHandler('close', fn)
  }
  /** Called when the connection fails (the `error` event, an {@link ErrorEvent}); a `close` event follows. */
  get onerror(): Handler<ErrorEvent> {
    return (this.#handlers.get('error') as unknown as Handler<ErrorEvent>) ?? null
  }
  /** Replaces the `error` handler; `null` removes it. */
  set onerror(fn: Handler<ErrorEvent>) {
    this.#setHandler('error', fn)
  }

  /**
   * Iterates over incoming messages (strings for text, Buffers for binary) from now until the
   * connection closes. An iterator that falls behind holds the socket: once it has 256 messages
   * or 8 MiB unread, the connection stops reading from the peer (TCP flow control then slows the
   * sender) until it is down to a quarter of that. Nothing is dropped.
   */
  [Symbol.asyncIterator](): AsyncIterator<string | Buffer> {
    const backlog: Backlog = { items: [], bytes: 0 }
    let wake: ((item: IteratorResult<string | Buffer>) => void) | undefined
    const sink = (item: IteratorResult<string | Buffer>) => {
      if (wake) {
        const w = wake
        wake = undefined
        w(item)
        return
      }
      backlog.items.push(item)
      if (item.done) return
      backlog.bytes += item.value.length
      if (
        !this.#readingHeld &&
        (backlog.items.length >= ITERATOR_MAX_MESSAGES || backlog.bytes >= ITERATOR_MAX_BYTES)
      ) {
        this.#readingHeld = true
        this.#native?.setReading(false)
      }
    }
    if (this.#state === ReadyState.CLOSED) backlog.items.push({ value: undefined, done: true })
    else {
      this.#iterators.set(sink, backlog)
    }
    const stop = () => {
      this.#iterators.delete(sink)
      this.#releaseReading()
      return Promise.resolve({ value: undefined, done: true } as IteratorResult<string | Buffer>)
    }
    return {
      next: () => {
        const item = backlog.items.shift()
        if (item) {
          if (item.done) {
            this.#iterators.delete(sink)
          } else backlog.bytes -= item.value.length
          this.#releaseReading()
          return Promise.resolve(item)
        }
        return new Promise((resolve) => {
          wake = resolve
        })
      },
      return: stop,
    }
  }

  /** Resumes reading once every iterator is down to a quarter of its limits. */
  #releaseReading(): void {
    if (!this.#readingHeld) return
    for (const b of this.#iterators.values()) {
      if (b.items.length > ITERATOR_MAX_MESSAGES / 4 || b.bytes > ITERATOR_MAX_BYTES / 4) return
    }
    this.#readingHeld = false
    this.#native?.setReading(true)
  }
}

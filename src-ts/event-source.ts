import { type Client, clientDefaults, getDefaultClient, getMockDispatcher, nativeClient } from './client.js'
import { fromNative, InvalidArgumentError, makeError } from './errors.js'
import { type Binding, native } from './native.js'
import { type SseEvent, SseParser } from './sse-parse.js'
import { checkOptions, optionKeys } from './validate.js'
import { flattenHeaders, headersFromFlat } from './wire/headers.js'

/** Options of an {@link EventSource}. */
export interface EventSourceInit {
  /** Accepted for WHATWG compatibility; cookies come from the client's `cookieJar`. */
  withCredentials?: boolean
  /**
   * The client to connect with: its TLS, proxy and cookie settings, its `headers` (those given
   * here win) and its `baseURL` (for a relative `url`). Default: the shared client.
   */
  client?: Client
  /** Extra request headers. */
  headers?: HeadersInit
  /** Reconnection delay in ms until the server sends `retry:`. Default 3 000. */
  retry?: number
  /** Most reconnections in a row without an event before giving up. Default: unlimited. */
  maxReconnects?: number
  /** `Last-Event-ID` of the first connection. */
  lastEventId?: string
  /**
   * Largest line, and largest event (type and data together), in bytes. A stream that sends more
   * fails for good with `ERR_SSE_EVENT_TOO_LARGE` (no reconnection). Default 4 MiB.
   */
  maxEventSize?: number
}

const EVENT_SOURCE_KEYS = optionKeys<EventSourceInit>({
  withCredentials: true,
  client: true,
  headers: true,
  retry: true,
  maxReconnects: true,
  lastEventId: true,
  maxEventSize: true,
})

/** An error event of an {@link EventSource}; `error` is set when the stream failed for good. */
export class EventSourceErrorEvent extends Event {
  /** Why the stream failed, when it will not reconnect. */
  readonly error: unknown
  /** Why the connection was lost, when it reconnects. */
  readonly message: string

  /** Makes an `error` event: `message` says why the connection was lost, `error` is set when the source gives up. */
  constructor(message: string, error?: unknown) {
    super('error')
    this.message = message
    this.error = error
  }
}

type Handler<E extends Event> = ((this: EventSource, ev: E) => unknown) | null

const DEFAULT_RETRY = 3000
const DEFAULT_MAX_EVENT_SIZE = 4 << 20
/**
 * Codes of a lost connection, after which the stream reconnects: the system ones (`ECONNREFUSED`,
 * `ECONNRESET`, `ETIMEDOUT`, `ENOTFOUND`, ...) and `ERR_IO`, as the native stream sorts them; any
 * other `ERR_` (TLS, protocol, a mock that matched nothing) fails it for good.
 */
const LOST = /^(E(?!RR_)[A-Z0-9_]+|ERR_IO)$/

/**
 * A WHATWG `EventSource` (Server-Sent Events) over the hypersock client. It reconnects after the
 * server's `retry` delay with `Last-Event-ID`; events are parsed in Rust and delivered in batches.
 * Also an async iterator of `MessageEvent`s:
 *
 * ```ts
 * for await (const ev of new EventSource(url)) console.log(ev.type, ev.data, ev.lastEventId)
 * ```
 *
 * With a `MockAgent` (`hypersock/testing`) installed, each connection and reconnection asks it
 * first, and a matching interceptor serves the stream (parsed in JS, ./sse-parse.ts). Once a
 * connection goes to the network, it and its reconnections stay there.
 */
export class EventSource extends EventTarget {
  /** `readyState` while connecting or waiting to reconnect (0). */
  static readonly CONNECTING = 0
  /** `readyState` while the stream is open (1). */
  static readonly OPEN = 1
  /** `readyState` once closed by `close()` or failed for good (2). */
  static readonly CLOSED = 2
  /** {@link EventSource.CONNECTING} (0), on the instance as well. */
  readonly CONNECTING = 0
  /** {@link EventSource.OPEN} (1), on the instance as well. */
  readonly OPEN = 1
  /** {@link EventSource.CLOSED} (2), on the instance as well. */
  readonly CLOSED = 2
  /** The URL of the stream. */
  readonly url: string
  /** `init.withCredentials`, kept for WHATWG compatibility (cookies come from the client's `cookieJar`). */
  readonly withCredentials: boolean
  #state = 0
  #client: Binding.BindingClient
  #headers: string[]
  #retry: number
  #maxReconnects: number | undefined
  #maxEventSize: number
  /** `Last-Event-ID` of the first connection. */
  #firstEventId: string
  #native: Binding.BindingEventSource
  /** Aborted by close(): ends a reconnection delay or a mocked reply's delay. */
  #closer = new AbortController()
  #origin: string
  #handlers = new Map<string, EventListener>()
  #queue: MessageEvent[] | null = null
  #wake: (() => void) | null = null
  #failure: unknown = undefined

  /** Connects to `url` (relative to the client's `baseURL`, if any) and starts receiving events. */
  constructor(url: string | URL, init: EventSourceInit = {}) {
    checkOptions('new EventSource()', init, EVENT_SOURCE_KEYS)
    super()
    const client = init.client ?? getDefaultClient()
    const defaults = clientDefaults(client)
    let parsed: URL
    try {
      parsed = new URL(String(url), defaults.base)
    } catch (cause) {
      throw new InvalidArgumentError('ERR_INVALID_URL', `invalid URL ${JSON.stringify(String(url))}`, { cause })
    }
    this.url = parsed.href
    this.#origin = parsed.origin
    this.withCredentials = !!init.withCredentials
    const retry = init.retry
    if (retry !== undefined && (!Number.isFinite(retry) || retry < 0 || retry > 0xffffffff)) {
      throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'retry must be a number of milliseconds')
    }
    const maxEventSize = init.maxEventSize
    if (maxEventSize !== undefined && (!Number.isSafeInteger(maxEventSize) || maxEventSize < 1)) {
      throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'maxEventSize must be a positive number of bytes')
    }
    this.#client = nativeClient(client)
    // The client's own headers go too, unless these name them.
    const own = flattenHeaders(init.headers)
    const names = new Set(own.filter((_, i) => i % 2 === 0).map((n) => n.toLowerCase()))
    const inherited = defaults.headers.filter((_, i, all) => !names.has(String(all[i - (i % 2)]).toLowerCase()))
    this.#headers = [...own, ...inherited]
    this.#retry = retry === undefined ? DEFAULT_RETRY : Math.floor(retry)
    this.#maxReconnects = init.maxReconnects
    this.#maxEventSize = maxEventSize ?? DEFAULT_MAX_EVENT_SIZE
    this.#firstEventId = init.lastEventId ?? ''
    // Made now, so that bad headers throw here; it connects on its first next().
    this.#native = this.#nativeStream(this.#firstEventId, this.#retry, this.#maxReconnects)
    void this.#run()
  }

  #nativeStream(lastEventId: string, retry: number, maxReconnects: number | undefined): Binding.BindingEventSource {
    try {
      return new native.BindingEventSource(
        this.#client,
        this.url,
        this.#headers,
        Math.min(retry, 0xffffffff),
        maxReconnects,
        lastEventId,
        this.#maxEventSize,
      )
    } catch (err) {
      throw fromNative(err)
    }
  }

  /** `CONNECTING` (0), `OPEN` (1) or `CLOSED` (2). */
  get readyState(): number {
    return this.#state
  }

  #setHandler(type: string, fn: ((ev: Event) => unknown) | null): void {
    const old = this.#handlers.get(type)
    if (old) this.removeEventListener(type, old)
    this.#handlers.delete(type)
    if (typeof fn === 'function') {
      const listener: EventListener = (ev) => fn.call(this, ev)
      this.#handlers.set(type, listener)
      this.addEventListener(type, listener)
    }
  }

  /** Called when a connection opens. */
  set onopen(fn: Handler<Event>) {
    this.#setHandler('open', fn as (ev: Event) => unknown)
  }
  /** Called for events of type `message`. */
  set onmessage(fn: Handler<MessageEvent>) {
    this.#setHandler('message', fn as (ev: Event) => unknown)
  }
  /** Called when the connection is lost (before a reconnection) or fails for good. */
  set onerror(fn: Handler<EventSourceErrorEvent>) {
    this.#setHandler('error', fn as (ev: Event) => unknown)
  }

  /** Closes the stream; no more events or reconnections. */
  close(): void {
    if (this.#state === 2) return
    this.#state = 2
    this.#native.close()
    this.#closer.abort()
    this.#wakeUp()
  }

  #wakeUp(): void {
    const wake = this.#wake
    this.#wake = null
    wake?.()
  }

  async #run(): Promise<void> {
    try {
      const stream = getMockDispatcher() === undefined ? this.#native : await this.#runMocked()
      if (stream !== null) await this.#runNative(stream)
    } catch (err) {
      this.#fail(fromNative(err))
    }
    this.#state = 2
    this.#wakeUp()
  }

  async #runNative(stream: Binding.BindingEventSource): Promise<void> {
    for (;;) {
      const batch = await stream.next()
      if (batch === null || this.#state === 2) return
      for (const item of batch) {
        if (item.kind === 'open') this.#open()
        else if (item.kind === 'reconnecting') this.#reconnecting(item.data)
        else this.#message(item.event, item.data, item.id)
      }
      await this.#drain()
    }
  }

  /**
   * Connects through the mock dispatcher, reconnecting as the native stream does (after the
   * retry delay, with `Last-Event-ID`, at most `maxReconnects` times in a row without an event).
   * Returns the native stream to go on with once a connection is not mocked (nothing matched and
   * the network is allowed, or the mock was uninstalled), or null when the stream has ended.
   */
  async #runMocked(): Promise<Binding.BindingEventSource | null> {
    let lastEventId = this.#firstEventId
    let retry = this.#retry
    let failures = 0
    for (let first = true; ; first = false) {
      if (!first) await pause(retry, this.#closer.signal)
      if (this.#state === 2) return null
      const dispatch = getMockDispatcher()
      let reason: string
      try {
        const headers = [...this.#headers, 'accept', 'text/event-stream', 'cache-control', 'no-cache']
        if (lastEventId !== '') headers.push('last-event-id', lastEventId)
        const reply = await dispatch?.({
          url: this.url,
          method: 'GET',
          headers,
          body: null,
          signal: this.#closer.signal,
        })
        if (this.#state === 2) return null
        if (reply === undefined) {
          if (first) return this.#native
          const left = this.#maxReconnects === undefined ? undefined : this.#maxReconnects - failures
          this.#native = this.#nativeStream(lastEventId, retry, left)
          return this.#native
        }
        if (reply.status === 204) return null
        const type = (headersFromFlat(reply.headers).get('content-type') ?? '').toLowerCase()
        if (reply.status !== 200 || !type.startsWith('text/event-stream')) {
          throw makeError(
            'ERR_HTTP_PROTOCOL',
            `HTTP protocol error: the event stream answered ${reply.status} with content type ` +
              `${JSON.stringify(type)} (expected 200 text/event-stream)`,
          )
        }
        this.#open()
        // A mocked reply holds its whole body.
        const parser = new SseParser(lastEventId, this.#maxEventSize)
        const events: SseEvent[] = []
        let tooLarge: unknown
        try {
          parser.push(reply.body, events)
        } catch (err) {
          tooLarge = err
        }
        lastEventId = parser.lastEventId
        retry = parser.retry ?? retry
        if (events.length > 0) failures = 0
        for (const ev of events) this.#message(ev.type, ev.data, ev.lastEventId)
        if (tooLarge !== undefined) throw tooLarge
        await this.#drain()
        if (this.#state === 2) return null
        reason = 'the server ended the stream'
      } catch (err) {
        if (this.#state === 2) return null
        const error = fromNative(err)
        if (!LOST.test((error as { code?: string }).code ?? '')) throw error
        reason = (error as Error).message
      }
      failures++
      if (this.#maxReconnects !== undefined && failures > this.#maxReconnects) {
        throw makeError('ECONNRESET', `connection reset: event stream lost ${failures} times in a row: ${reason}`)
      }
      this.#reconnecting(reason)
    }
  }

  #open(): void {
    if (this.#state === 2) return
    this.#state = 1
    this.dispatchEvent(new Event('open'))
  }

  #reconnecting(reason: string): void {
    if (this.#state === 2) return
    this.#state = 0
    this.dispatchEvent(new EventSourceErrorEvent(reason))
  }

  #message(type: string, data: string, lastEventId: string): void {
    if (this.#state === 2) return
    const ev = new MessageEvent(type, { data, lastEventId, origin: this.#origin })
    this.dispatchEvent(ev)
    this.#queue?.push(ev)
  }

  #fail(error: unknown): void {
    if (this.#state === 2) return
    this.#state = 2
    this.#failure = error
    this.dispatchEvent(new EventSourceErrorEvent(String((error as Error).message), error))
  }

  /** Wakes the async iterator; one that falls behind holds the stream back instead of growing a queue. */
  async #drain(): Promise<void> {
    this.#wakeUp()
    while (this.#queue && this.#queue.length > 1024 && this.#state !== 2) {
      await new Promise<void>((resolve) => {
        this.#wake = resolve
      })
    }
  }

  /** Every event (of any type) as a `MessageEvent`, until the stream closes. Breaking out closes it. */
  async *[Symbol.asyncIterator](): AsyncGenerator<MessageEvent, void, undefined> {
    this.#queue ??= []
    const queue = this.#queue
    try {
      for (;;) {
        const ev = queue.shift()
        if (ev) {
          if (queue.length === 1024) this.#wakeUp()
          yield ev
          continue
        }
        if (this.#state === 2) {
          if (this.#failure !== undefined) throw this.#failure
          return
        }
        await new Promise<void>((resolve) => {
          this.#wake = resolve
        })
      }
    } finally {
      this.close()
    }
  }
}

/** The events of a Server-Sent Events stream as an async iterator (see {@link EventSource}). */
export function events(url: string | URL, init?: EventSourceInit): AsyncGenerator<MessageEvent, void, undefined> {
  return new EventSource(url, init)[Symbol.asyncIterator]()
}

/** Resolves after `ms` (setTimeout's limit at most), or at once when `signal` aborts. */
function pause(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve()
    const done = () => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, Math.min(ms, 0x7fffffff))
    signal.addEventListener('abort', done, { once: true })
  })
}

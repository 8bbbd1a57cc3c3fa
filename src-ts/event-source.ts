import { type Client, getDefaultClient, nativeClient } from './client.js'
import { fromNative, InvalidArgumentError } from './errors.js'
import { type Binding, native } from './native.js'
import { checkOptions, optionKeys } from './validate.js'
import { flattenHeaders } from './wire/headers.js'

/** Options of an {@link EventSource}. */
export interface EventSourceInit {
  /** Accepted for WHATWG compatibility; cookies come from the client's `cookieJar`. */
  withCredentials?: boolean
  /** The client to connect with (its TLS, proxy and cookie settings). Default: the shared client. */
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

  constructor(message: string, error?: unknown) {
    super('error')
    this.message = message
    this.error = error
  }
}

type Handler<E extends Event> = ((this: EventSource, ev: E) => unknown) | null

/**
 * A WHATWG `EventSource` (Server-Sent Events) over the hypersock client. It reconnects after the
 * server's `retry` delay with `Last-Event-ID`; events are parsed in Rust and delivered in batches.
 * Also an async iterator of `MessageEvent`s:
 *
 * ```ts
 * for await (const ev of new EventSource(url)) console.log(ev.type, ev.data, ev.lastEventId)
 * ```
 */
export class EventSource extends EventTarget {
  static readonly CONNECTING = 0
  static readonly OPEN = 1
  static readonly CLOSED = 2
  readonly CONNECTING = 0
  readonly OPEN = 1
  readonly CLOSED = 2
  /** The URL of the stream. */
  readonly url: string
  readonly withCredentials: boolean
  #state = 0
  #native: Binding.BindingEventSource
  #origin: string
  #handlers = new Map<string, EventListener>()
  #queue: MessageEvent[] | null = null
  #wake: (() => void) | null = null
  #failure: unknown = undefined

  constructor(url: string | URL, init: EventSourceInit = {}) {
    checkOptions('new EventSource()', init, EVENT_SOURCE_KEYS)
    super()
    let parsed: URL
    try {
      parsed = new URL(String(url))
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
    try {
      this.#native = new native.BindingEventSource(
        nativeClient(init.client ?? getDefaultClient()),
        this.url,
        flattenHeaders(init.headers),
        retry === undefined ? undefined : Math.floor(retry),
        init.maxReconnects,
        init.lastEventId,
        maxEventSize,
      )
    } catch (err) {
      throw fromNative(err)
    }
    void this.#run()
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
    this.#wakeUp()
  }

  #wakeUp(): void {
    const wake = this.#wake
    this.#wake = null
    wake?.()
  }

  async #run(): Promise<void> {
    for (;;) {
      let batch: Binding.BindingSseItem[] | null
      try {
        batch = await this.#native.next()
      } catch (err) {
        if (this.#state === 2) return
        this.#state = 2
        this.#failure = fromNative(err)
        this.dispatchEvent(new EventSourceErrorEvent(String((this.#failure as Error).message), this.#failure))
        this.#wakeUp()
        return
      }
      if (batch === null || this.#state === 2) {
        this.#state = 2
        this.#wakeUp()
        return
      }
      for (const item of batch) {
        if (this.#state === 2) break
        if (item.kind === 'open') {
          this.#state = 1
          this.dispatchEvent(new Event('open'))
        } else if (item.kind === 'reconnecting') {
          this.#state = 0
          this.dispatchEvent(new EventSourceErrorEvent(item.data))
        } else {
          const ev = new MessageEvent(item.event, { data: item.data, lastEventId: item.id, origin: this.#origin })
          this.dispatchEvent(ev)
          this.#queue?.push(ev)
        }
      }
      this.#wakeUp()
      // An async iterator that falls behind holds the stream back instead of growing a queue.
      while (this.#queue && this.#queue.length > 1024 && this.#state !== 2) {
        await new Promise<void>((resolve) => {
          this.#wake = resolve
        })
      }
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

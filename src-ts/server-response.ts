// Turns what a handler returns into native responses: whole, streamed, or a connection upgrade.
import { STATUS_CODES } from 'node:http'
import { Duplex } from 'node:stream'
import { type BodyInit, encodeBody } from './body.js'
import { fromNative, InvalidArgumentError } from './errors.js'
import { type Binding, native } from './native.js'
import { fastParts } from './response.js'
import { flattenHeaders, hasHeader } from './wire/headers.js'

/** A chunk of a streamed body. */
export type BodyChunk = Uint8Array | string

/** Streamed body sources: a web `ReadableStream` or any (async) iterable of chunks. */
export type BodyStreamSource = ReadableStream<BodyChunk> | AsyncIterable<BodyChunk> | Iterable<BodyChunk>

/** A response as a plain object. */
export interface ResponseObject {
  /** Status code, default 200. */
  status?: number
  /** Response headers; arrays of pairs keep repeated names (e.g. several `set-cookie`). */
  headers?: HeadersInit
  /** The body: whole (string, bytes, URLSearchParams) or streamed (ReadableStream, async iterable). */
  body?: BodyInit | BodyStreamSource
  /**
   * Accept the client's `Upgrade` request: a 101 with `headers` is sent and this function gets
   * the raw connection as a Node `Duplex`.
   */
  upgrade?: (socket: Duplex) => void
}

/** What a `fetch` handler may return (or resolve to). */
export type ResponseLike = globalThis.Response | string | Uint8Array | ResponseObject

const TEXT = 'text/plain;charset=utf-8'
const OCTETS = 'application/octet-stream'
/** The header lists of a bare string (text) or bytes response. */
export const TEXT_HEADERS = ['content-type', TEXT]
export const OCTET_HEADERS = ['content-type', OCTETS]

/** The request a response answers: its server, the server's reply handle, and its id there. */
export interface Answerable {
  readonly server: Binding.BindingServer
  readonly reply: ReplyHandle
  readonly id: number
  /** Told that the body streams; `closed` resolves when the connection dropped it. */
  streaming?(closed: Promise<void>): void
  /** Told that the streamed body ended (or was cut). */
  finished?(): void
}

/** What `BindingServer.replyHandle` returns. */
export type ReplyHandle = ReturnType<Binding.BindingServer['replyHandle']>

/** Sends a whole response; `headers` is a flat `[name, value, ...]` list. */
export function respond(
  to: Answerable,
  status: number,
  headers: string[],
  body: string | Uint8Array | null,
  reason?: string,
): boolean {
  return native.respond(to.reply, to.id, status, headers, body, reason)
}

/** A `Response`'s `statusText` when it is not the status's usual phrase (sent on HTTP/1.1). */
function reasonOf(res: globalThis.Response): string | undefined {
  const text = res.statusText
  return text && text !== STATUS_CODES[res.status] ? text : undefined
}

/** Sends a plain-text response. */
export function respondText(to: Answerable, status: number, text: string): boolean {
  return native.respond(to.reply, to.id, status, TEXT_HEADERS, text)
}

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
}

function checkStatus(status: number): number {
  if (!Number.isInteger(status) || status < 200 || status > 999) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `invalid response status ${status}`)
  }
  return status
}

function isStreamSource(body: unknown): body is BodyStreamSource {
  if (body === null || typeof body !== 'object') return false
  if (body instanceof ReadableStream) return true
  if (ArrayBuffer.isView(body) || body instanceof ArrayBuffer || body instanceof URLSearchParams) return false
  return Symbol.asyncIterator in body || Symbol.iterator in body
}

/**
 * An iterator over a web stream whose `return()` cancels the stream at once, even mid-read.
 * `ahead` holds reads already started, taken first, in order.
 */
function streamIterator<T>(
  reader: ReadableStreamDefaultReader<T>,
  ahead: Array<Promise<ReadableStreamReadResult<T>>> = [],
): AsyncIterator<T> {
  return {
    next: async () => {
      const next = await (ahead.shift() ?? reader.read())
      return next.done ? { done: true, value: undefined } : { done: false, value: next.value }
    },
    return: async () => {
      await reader.cancel().catch(() => {})
      return { done: true, value: undefined }
    },
  }
}

const LATER = Symbol('later')

/** The read's result if it settles before the event loop turns, else `LATER`. */
function settledNow<T>(read: Promise<T>): Promise<T | typeof LATER> {
  return Promise.race([read, new Promise<typeof LATER>((resolve) => setImmediate(resolve, LATER))])
}

function iteratorOf(source: BodyStreamSource): AsyncIterator<BodyChunk> | Iterator<BodyChunk> {
  if (source instanceof ReadableStream) return streamIterator(source.getReader())
  if (Symbol.asyncIterator in source) return source[Symbol.asyncIterator]()
  return (source as Iterable<BodyChunk>)[Symbol.iterator]()
}

const GONE: unique symbol = Symbol('gone')

/** Tells a source that nothing more will be pulled from it, without waiting for it. */
function stop(source: AsyncIterator<BodyChunk> | Iterator<BodyChunk>): void {
  Promise.resolve(source.return?.()).catch(() => {})
}

/**
 * Writes a streamed body through the sink, waiting whenever the client is slower. When the
 * client goes away the source is not pulled again: its `return()` is called (a web stream is
 * cancelled) even while it is still producing the next chunk.
 */
async function pump(
  sink: Binding.BindingBodySink,
  source: AsyncIterator<BodyChunk> | Iterator<BodyChunk>,
  closed: Promise<void>,
): Promise<void> {
  const gone: Promise<typeof GONE> = closed.then(() => GONE)
  try {
    for (;;) {
      const next = await Promise.race([source.next(), gone])
      if (next === GONE) return stop(source)
      if (next.done) break
      const chunk = next.value
      const bytes = typeof chunk === 'string' ? Buffer.from(chunk, 'utf8') : chunk
      if (bytes.byteLength === 0) continue
      if (!(await sink.write(bytes))) return stop(source)
    }
    sink.end()
  } catch (err) {
    sink.abort()
    throw err
  }
}

async function sendStream(
  to: Answerable,
  status: number,
  headers: string[],
  source: AsyncIterator<BodyChunk> | Iterator<BodyChunk>,
  reason?: string,
): Promise<void> {
  const sink = to.server.respondStream(to.id, status, headers, reason)
  const closed = sink.waitClosed()
  to.streaming?.(closed)
  try {
    await pump(sink, source, closed)
  } finally {
    to.finished?.()
  }
}

/** Sends a global `Response`: whole when its body is already complete, streamed otherwise. */
async function sendWebResponse(to: Answerable, res: globalThis.Response): Promise<void> {
  const status = checkStatus(res.status)
  const headers = flattenHeaders(res.headers)
  const reason = reasonOf(res)
  if (res.body === null) {
    respond(to, status, headers, null, reason)
    return
  }
  // A body that is already complete (a string, bytes) goes out whole; one still being produced
  // is streamed from its first chunk on, without waiting for a second one (an event stream
  // must not hold its head back until its second event).
  const reader = res.body.getReader()
  const firstRead = reader.read()
  const ahead = [firstRead]
  const first = await settledNow(firstRead)
  if (first !== LATER) {
    if (first.done) {
      respond(to, status, headers, null, reason)
      return
    }
    const secondRead = reader.read()
    ahead.push(secondRead)
    const second = await settledNow(secondRead)
    if (second !== LATER && second.done) {
      respond(to, status, headers, asBuffer(first.value), reason)
      return
    }
  }
  await sendStream(to, status, headers, streamIterator(reader, ahead), reason)
}

/** A Node `Duplex` over a connection taken over after a 101. */
class RawSocket extends Duplex {
  #raw: Binding.BindingRawSocket

  constructor(raw: Binding.BindingRawSocket) {
    // As a socket from node:http's upgrade event: when the peer ends, this side ends too.
    super({ allowHalfOpen: false })
    this.#raw = raw
  }

  override _read(): void {
    this.#raw.read().then(
      (chunk) => this.push(chunk ?? null),
      (err: unknown) => this.destroy(fromNative(err) as Error),
    )
  }

  override _write(chunk: Buffer, _enc: BufferEncoding, done: (err?: Error | null) => void): void {
    this.#raw.write(chunk).then(
      () => done(),
      (err: unknown) => done(fromNative(err) as Error),
    )
  }

  override _final(done: (err?: Error | null) => void): void {
    this.#raw.end().then(
      () => done(),
      (err: unknown) => done(fromNative(err) as Error),
    )
  }

  override _destroy(err: Error | null, done: (err?: Error | null) => void): void {
    this.#raw.destroy().then(
      () => done(err),
      () => done(err),
    )
  }
}

/** Sends `out` as the response to `raw`; returns a promise when the work continues asynchronously. */
export function sendResponse(
  to: Answerable & { readonly canUpgrade: boolean },
  out: ResponseLike,
): void | Promise<void> {
  if (typeof out === 'string') {
    native.respond(to.reply, to.id, 200, TEXT_HEADERS, out)
  } else if (out instanceof Uint8Array) {
    native.respond(to.reply, to.id, 200, OCTET_HEADERS, asBuffer(out))
  } else if (out instanceof globalThis.Response) {
    const fast = fastParts(out)
    if (fast) {
      native.respond(to.reply, to.id, fast.status, fast.headers, fast.body, reasonOf(out))
      return
    }
    return sendWebResponse(to, out)
  } else if (out !== null && typeof out === 'object') {
    const headers = flattenHeaders(out.headers)
    if (out.upgrade) {
      if (!to.canUpgrade) {
        throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'the request did not ask for an upgrade')
      }
      out.upgrade(new RawSocket(to.server.respondUpgrade(to.id, headers)))
      return
    }
    const status = checkStatus(out.status ?? 200)
    if (isStreamSource(out.body)) {
      return sendStream(to, status, headers, iteratorOf(out.body))
    }
    const { data, type } = encodeBody(out.body as BodyInit)
    if (type && !hasHeader(headers, 'content-type')) headers.push('content-type', type)
    respond(to, status, headers, data)
  } else {
    throw new TypeError(
      'the fetch handler returned nothing; return a Response, a string, bytes or { status, headers, body }',
    )
  }
}

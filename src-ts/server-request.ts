import { ConnectionError, fromNative, HypersockError } from './errors.js'
import { type Binding, native } from './native.js'
import type { ReplyHandle } from './server-response.js'
import { parseTls, type TlsDetails } from './tls.js'
import { BODY_FULL, BODY_STREAM, RequestRecord } from './wire/request.js'

const utf8 = new TextDecoder()

/** Most parts `formData()` reads from a `multipart/form-data` body (more is a TypeError). */
const MAX_FORM_PARTS = 10_000
/** One `; name=value` parameter of a Content-Type: the value a quoted-string (maybe unterminated) or a token. */
const MIME_PARAM = /;[ \t\r\n]*([^ \t\r\n;=]*)[ \t\r\n]*(?:=[ \t\r\n]*(?:"((?:[^"\\]|\\[\s\S])*)"?|([^;]*)))?/y

function view(buf: Buffer): Uint8Array {
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
}

/**
 * The `boundary` parameter of a `multipart/form-data` Content-Type (RFC 2046: a token or a
 * quoted-string; the first one wins, as in WHATWG MIME parsing), or null when it has none.
 */
function boundaryOf(type: string): string | null {
  let at = type.indexOf(';')
  while (at >= 0) {
    MIME_PARAM.lastIndex = at
    const m = MIME_PARAM.exec(type)
    if (!m) break
    if ((m[1] as string).toLowerCase() === 'boundary') {
      if (m[2] !== undefined) return m[2].replace(/\\([\s\S])/g, '$1')
      return (m[3] ?? '').replace(/[ \t\r\n]+$/, '')
    }
    at = type.indexOf(';', MIME_PARAM.lastIndex)
  }
  return null
}

/**
 * A request received by the server, shaped like WHATWG `Request`. Method, target and flags are
 * read from the batch the addon handed over; headers, address, TLS details and body are decoded
 * from it only when asked for, so an unread header list or body costs nothing.
 */
export class ServerRequest extends RequestRecord {
  /** @internal */
  readonly server: Binding.BindingServer
  /** @internal */
  readonly reply: ReplyHandle
  #host: string
  #scheme: string
  #target: string | undefined
  #url: string | undefined
  #parsed: URL | undefined
  #headers: Headers | undefined
  #cookies: Map<string, string> | undefined
  #used = false
  #stream: ReadableStream<Uint8Array> | undefined
  #tls: TlsDetails | null | undefined
  #params: Record<string, string> | undefined
  #abort: AbortController | undefined
  /** Why the request was given up on, when that happened before `signal` was asked for. */
  #aborted: unknown
  /** Resolves when the connection dropped a streamed response's body. */
  #bodyClosed: Promise<void> | undefined
  #finished = false
  /**
   * The route pattern the request matched (e.g. `/users/:id`), or `null` when the `fetch`
   * handler answers it.
   */
  route: string | null = null

  /** @internal */
  constructor(
    batch: Buffer,
    at: number,
    server: Binding.BindingServer,
    reply: ReplyHandle,
    host: string,
    scheme: string,
  ) {
    super(batch, at)
    this.server = server
    this.reply = reply
    this.#host = host
    this.#scheme = scheme
  }

  /** The request target as sent: path and query, or an absolute URL. */
  get #targetString(): string {
    this.#target ??= this.readTarget()
    return this.#target
  }

  /** The absolute URL, built from the `Host` header and the request target. */
  get url(): string {
    if (this.#url === undefined) {
      const target = this.#targetString
      if (/^https?:\/\//i.test(target)) this.#url = target
      else {
        const host = this.headers.get('host') ?? this.#host
        this.#url = `${this.#scheme}://${host}${target.startsWith('/') ? target : `/${target}`}`
      }
    }
    return this.#url
  }

  #urlObject(): URL {
    if (this.#parsed === undefined) {
      try {
        this.#parsed = new URL(this.url)
      } catch {
        // The Host header (or the authority of an absolute target) is no host: keep the path
        // and query under the server's own host. Appended, not resolved: `//x` is a path here.
        const target = this.#targetString.replace(/^https?:\/\/[^/?#]*/i, '')
        this.#parsed = new URL(`${this.#scheme}://${this.#host}${target.startsWith('/') ? target : `/${target}`}`)
      }
    }
    return this.#parsed
  }

  /**
   * The parameters of the matched route, percent-decoded: `{ id: '7' }` for `/users/:id` and
   * `/users/7`; the rest of the path under a final `*` is `params['*']`. Empty without a route.
   */
  get params(): Record<string, string> {
    this.#params ??= this.readParams()
    return this.#params
  }

  /**
   * Aborts when the client goes away before the response is complete (the connection closed,
   * the HTTP/2 stream was reset, the server stopped without grace) or when the request body
   * does not arrive within `requestTimeout`. A streamed response also stops pulling from its
   * source then. `signal.reason` is a `ConnectionError` (`ECONNRESET`) or a `TimeoutError`.
   */
  get signal(): AbortSignal {
    if (this.#abort === undefined) {
      const controller = new AbortController()
      this.#abort = controller
      if (this.#aborted !== undefined) controller.abort(this.#aborted)
      else if (this.#bodyClosed) this.#watchBody(this.#bodyClosed)
      else if (!this.#finished) {
        this.server.clientGone(this.id).then(
          (gone) => {
            if (gone) this.abortWith(clientGone())
            else if (this.#bodyClosed) this.#watchBody(this.#bodyClosed)
          },
          () => {},
        )
      }
    }
    return this.#abort.signal
  }

  #watchBody(closed: Promise<void>): void {
    closed.then(() => this.abortWith(clientGone()))
  }

  /** @internal Aborts `signal` with `reason`, unless the response was complete. */
  abortWith(reason: unknown): void {
    if (this.#finished || this.#aborted !== undefined) return
    this.#aborted = reason
    this.#abort?.abort(reason)
  }

  /** @internal The response's body is streaming; `closed` resolves when the connection dropped it. */
  streaming(closed: Promise<void>): void {
    this.#bodyClosed = closed
    if (this.#abort) this.#watchBody(closed)
  }

  /** @internal The response went out whole, or its streamed body ended. */
  finished(): void {
    this.#finished = true
  }

  /** The path of the URL, e.g. `/chat`. */
  get path(): string {
    return this.#urlObject().pathname
  }

  /** The query string, parsed. */
  get query(): URLSearchParams {
    return this.#urlObject().searchParams
  }

  /** The host the client asked for (the `Host` header, or `:authority` in HTTP/2). */
  get host(): string {
    return this.headers.get('host') ?? this.#host
  }

  /**
   * Request headers; repeated fields are kept (`get` joins them). Values read as UTF-8, or byte
   * for byte (Latin-1, as WHATWG fetch reads them all) when that gives characters above U+00FF,
   * which a `Headers` cannot hold.
   */
  get headers(): Headers {
    this.#headers ??= this.readHeaders()
    return this.#headers
  }

  /** Cookies sent by the client (`Cookie` header), by name. */
  get cookies(): Map<string, string> {
    if (this.#cookies === undefined) {
      this.#cookies = new Map()
      for (const part of (this.headers.get('cookie') ?? '').split(/;\s*/)) {
        const eq = part.indexOf('=')
        if (eq <= 0) continue
        const name = part.slice(0, eq).trim()
        let value = part.slice(eq + 1).trim()
        if (value.startsWith('"') && value.endsWith('"') && value.length >= 2) value = value.slice(1, -1)
        if (!this.#cookies.has(name)) this.#cookies.set(name, value)
      }
    }
    return this.#cookies
  }

  /**
   * What TLS negotiated on an HTTPS connection (`null` on plain HTTP): protocol, cipher, ALPN,
   * the SNI name, and the client's certificate chain when it sent one (mutual TLS).
   */
  get tls(): TlsDetails | null {
    if (this.#tls === undefined) {
      const json = this.readTlsJson()
      this.#tls = json === null ? null : parseTls(json)
    }
    return this.#tls
  }

  /** True once the body has been read or its stream taken. */
  get bodyUsed(): boolean {
    return this.#used
  }

  #claim(): void {
    if (this.#used) throw new TypeError('the body has already been read')
    this.#used = true
  }

  /**
   * The body as a web `ReadableStream`, or `null` when there is none. Chunks are pulled from
   * the connection as the stream is read, so a slow reader slows the client down.
   */
  get body(): ReadableStream<Uint8Array> | null {
    if (this.#stream) return this.#stream
    const kind = this.bodyKind
    if (kind !== BODY_FULL && kind !== BODY_STREAM) return null
    this.#claim()
    if (kind === BODY_FULL) {
      const whole = new Uint8Array(this.readWholeBody())
      this.#stream = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(whole)
          controller.close()
        },
      })
    } else {
      const raw = this.server.takeBodyStream(this.id)
      const failed = (err: unknown) => this.#bodyFailed(err)
      this.#stream = new ReadableStream<Uint8Array>(
        {
          async pull(controller) {
            try {
              const chunk = raw ? await raw.readChunk() : null
              if (chunk) controller.enqueue(view(chunk))
              else controller.close()
            } catch (err) {
              controller.error(failed(err))
            }
          },
        },
        { highWaterMark: 0 },
      )
    }
    return this.#stream
  }

  /** The error of a failed body read; a timeout also aborts `signal`. */
  #bodyFailed(err: unknown): unknown {
    const e = fromNative(err)
    if (e instanceof HypersockError && (e.code === 'ETIMEDOUT' || e.code === 'ECONNRESET')) this.abortWith(e)
    return e
  }

  /** The whole body; a view into the batch when it came whole (callers copy before handing it out). */
  async #all(): Promise<Buffer> {
    this.#claim()
    const kind = this.bodyKind
    if (kind === BODY_FULL) return this.readWholeBody()
    if (kind === BODY_STREAM) {
      const raw = this.server.takeBodyStream(this.id)
      if (!raw) return Buffer.alloc(0)
      try {
        return await raw.readAll()
      } catch (err) {
        throw this.#bodyFailed(err)
      }
    }
    return Buffer.alloc(0)
  }

  /** The body as bytes. */
  async bytes(): Promise<Uint8Array> {
    return new Uint8Array(await this.#all())
  }

  /** The body as an ArrayBuffer. */
  async arrayBuffer(): Promise<ArrayBuffer> {
    const body = await this.#all()
    return body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength) as ArrayBuffer
  }

  /** The body decoded as UTF-8. */
  async text(): Promise<string> {
    return (await this.#all()).toString('utf8')
  }

  /** The body parsed as JSON. */
  async json(): Promise<unknown> {
    return JSON.parse(await this.text())
  }

  /**
   * The body parsed as form data (`application/x-www-form-urlencoded` or `multipart/form-data`).
   * Multipart bodies are parsed by the Rust core (RFC 7578: CRLF line breaks, at most 10 000
   * parts and 16 KiB of headers per part); a malformed one is a TypeError.
   */
  async formData(): Promise<FormData> {
    const type = this.headers.get('content-type') ?? ''
    const body = await this.#all()
    if (type.split(';', 1)[0]?.trim().toLowerCase() !== 'multipart/form-data') {
      return new Response(body as Uint8Array<ArrayBuffer>, { headers: { 'content-type': type } }).formData()
    }
    const boundary = boundaryOf(type)
    if (boundary === null) throw new TypeError('multipart/form-data body: the Content-Type has no boundary parameter')
    let parts: Binding.BindingPart[]
    try {
      parts = native.parseMultipart(body, boundary, MAX_FORM_PARTS)
    } catch (err) {
      const e = fromNative(err)
      throw new TypeError(e instanceof Error ? e.message : String(e), { cause: e })
    }
    const form = new FormData()
    for (const p of parts) {
      if (p.filename === undefined || p.filename === null) {
        // UTF-8 decode as WHATWG multipart/form-data parsing does: a leading BOM is dropped.
        form.append(p.name, utf8.decode(body.subarray(p.start, p.end)))
      } else {
        // RFC 7578 4.4: a part without Content-Type is text/plain. The File copies its bytes
        // (the body may be a view into the request batch).
        const file = new File([body.subarray(p.start, p.end) as Uint8Array<ArrayBuffer>], p.filename, {
          type: p.contentType ?? 'text/plain',
        })
        form.append(p.name, file)
      }
    }
    return form
  }
}

function clientGone(): ConnectionError {
  return new ConnectionError('ECONNRESET', 'the client went away before the response was complete')
}

import { fromNative } from './errors.js'
import { type Binding, native } from './native.js'
import type { ReplyHandle } from './server-response.js'
import { parseTls, type TlsDetails } from './tls.js'
import { type Batch, u16, u32 } from './wire.js'

const utf8 = new TextDecoder()

const BODY_FULL = 1
const BODY_STREAM = 2
const METHODS = ['', ...native.requestMethods()]
const VERSIONS = ['1.1', '1.0', '2', '1.1']
const FLAG_UPGRADE = 0x10
const FLAG_TLS = 0x20
/** The shortest record: length, id, method code, flags, header count, port. */
const MIN_RECORD = 14
/** Characters a `Headers` value (a ByteString) cannot hold. */
const NOT_BYTE_STRING = /[^\0-\xff]/
/** Most parts `formData()` reads from a `multipart/form-data` body (more is a TypeError). */
const MAX_FORM_PARTS = 10_000
/** One `; name=value` parameter of a Content-Type: the value a quoted-string (maybe unterminated) or a token. */
const MIME_PARAM = /;[ \t\r\n]*([^ \t\r\n;=]*)[ \t\r\n]*(?:=[ \t\r\n]*(?:"((?:[^"\\]|\\[\s\S])*)"?|([^;]*)))?/y

function view(buf: Buffer): Uint8Array {
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
}

function ipString(b: Buffer, o: number, family: number): string {
  if (family === 1) return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`
  if (family !== 2) return ''
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(u16be(b, o + i).toString(16))
  // IPv4-mapped addresses read as IPv4, like node:net.
  if (groups.slice(0, 5).every((g) => g === '0') && groups[5] === 'ffff') return ipString(b, o + 12, 1)
  // The longest run of zero groups becomes "::" (RFC 5952).
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === '0') j++
    if (j - i > bestLen) {
      best = i
      bestLen = j - i
    }
    i = j
  }
  if (best < 0) return groups.join(':')
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`
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

function u16be(b: Buffer, o: number): number {
  return ((b[o] as number) << 8) | (b[o + 1] as number)
}

/**
 * Reads the requests of a batch from the addon (the format is written by `encode_request` in
 * crates/node/src/wire/request.rs) and calls `each` with each, in order. A record that does not fit
 * the batch (which the addon never writes) throws instead of being read past or looped on.
 */
export function decodeRequests(
  batch: Buffer,
  server: Binding.BindingServer,
  reply: ReplyHandle,
  host: string,
  scheme: string,
  each: (request: ServerRequest) => void,
): void {
  let o = 0
  while (o < batch.length) {
    const len = o + 4 <= batch.length ? u32(batch, o) : 0
    if (len < MIN_RECORD || len > batch.length - o) {
      throw new Error(`hypersock: corrupt request batch (a record of ${len} bytes at ${o} of ${batch.length})`)
    }
    each(new ServerRequest(batch, o, server, reply, host, scheme))
    o += len
  }
}

/**
 * A request received by the server, shaped like WHATWG `Request`. Method, target and flags are
 * read from the batch the addon handed over; headers, address, TLS details and body are decoded
 * from it only when asked for, so an unread header list or body costs nothing.
 */
export class ServerRequest {
  /** @internal */
  readonly id: number
  /** @internal */
  readonly server: Binding.BindingServer
  /** @internal */
  readonly reply: ReplyHandle
  #batch: Batch
  #flags: number
  #count: number
  #method: string
  #targetAt: number
  #headersAt: number
  #remoteAt: number
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
  #tail = -1

  /** @internal */
  constructor(
    batch: Buffer,
    at: number,
    server: Binding.BindingServer,
    reply: ReplyHandle,
    host: string,
    scheme: string,
  ) {
    this.#batch = batch as Batch
    this.server = server
    this.reply = reply
    this.#host = host
    this.#scheme = scheme
    this.id = u32(batch, at + 4)
    const code = batch[at + 8] as number
    const flags = batch[at + 9] as number
    this.#flags = flags
    this.#count = u16(batch, at + 10)
    this.#remoteAt = at + 12
    let o = at + 14 + (flags >> 6 === 1 ? 4 : flags >> 6 === 2 ? 16 : 0)
    if (code === 0) {
      const n = batch[o] as number
      this.#method = (batch as Batch).latin1Slice(o + 1, o + 1 + n)
      o += 1 + n
    } else {
      this.#method = METHODS[code] as string
    }
    this.#targetAt = o
    this.#headersAt = o + 4 + u32(batch, o)
  }

  /** Offset just past the header block (where the TLS details and the body start). */
  #afterHeaders(): number {
    if (this.#tail < 0) {
      const b = this.#batch
      let o = this.#headersAt
      for (let i = 0; i < this.#count; i++) {
        o += 2 + u16(b, o)
        o += 4 + u32(b, o)
      }
      this.#tail = o
    }
    return this.#tail
  }

  #wholeBody(): Buffer {
    let o = this.#afterHeaders()
    if (this.#flags & FLAG_TLS) o += 4 + u32(this.#batch, o)
    return this.#batch.subarray(o + 4, o + 4 + u32(this.#batch, o))
  }

  get #bodyKind(): number {
    return this.#flags & 3
  }

  /** True when the client asked to switch protocols (an `Upgrade` header, HTTP/1.1). */
  get canUpgrade(): boolean {
    return (this.#flags & FLAG_UPGRADE) !== 0
  }

  /** The request method. */
  get method(): string {
    return this.#method
  }

  /** The request target as sent: path and query, or an absolute URL (UTF-8: the addon checked it). */
  get #targetString(): string {
    if (this.#target === undefined) {
      const o = this.#targetAt
      this.#target = this.#batch.utf8Slice(o + 4, o + 4 + u32(this.#batch, o))
    }
    return this.#target as string
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

  /** `1.0`, `1.1` or `2`. */
  get httpVersion(): string {
    return VERSIONS[(this.#flags >> 2) & 3] as string
  }

  /**
   * Request headers; repeated fields are kept (`get` joins them). Values read as UTF-8, or byte
   * for byte (Latin-1, as WHATWG fetch reads them all) when that gives characters above U+00FF,
   * which a `Headers` cannot hold.
   */
  get headers(): Headers {
    if (this.#headers === undefined) {
      const headers = new Headers()
      const b = this.#batch
      let o = this.#headersAt
      for (let i = 0; i < this.#count; i++) {
        const n = u16(b, o)
        const name = b.latin1Slice(o + 2, o + 2 + n)
        o += 2 + n
        const v = u32(b, o)
        let value = b.utf8Slice(o + 4, o + 4 + v)
        if (NOT_BYTE_STRING.test(value)) value = b.latin1Slice(o + 4, o + 4 + v)
        headers.append(name, value)
        o += 4 + v
      }
      this.#tail = o
      this.#headers = headers
    }
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
      if (this.#flags & FLAG_TLS) {
        const o = this.#afterHeaders()
        this.#tls = parseTls(this.#batch.utf8Slice(o + 4, o + 4 + u32(this.#batch, o)))
      } else {
        this.#tls = null
      }
    }
    return this.#tls
  }

  /** The client's IP address (empty on a unix socket). */
  get remoteAddress(): string {
    return ipString(this.#batch, this.#remoteAt + 2, this.#flags >> 6)
  }

  /** The client's port (0 on a unix socket). */
  get remotePort(): number {
    return u16(this.#batch, this.#remoteAt)
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
    const kind = this.#bodyKind
    if (kind !== BODY_FULL && kind !== BODY_STREAM) return null
    this.#claim()
    if (kind === BODY_FULL) {
      const whole = new Uint8Array(this.#wholeBody())
      this.#stream = new ReadableStream<Uint8Array>({
        start(controller) {
          controller.enqueue(whole)
          controller.close()
        },
      })
    } else {
      const raw = this.server.takeBodyStream(this.id)
      this.#stream = new ReadableStream<Uint8Array>(
        {
          async pull(controller) {
            try {
              const chunk = raw ? await raw.readChunk() : null
              if (chunk) controller.enqueue(view(chunk))
              else controller.close()
            } catch (err) {
              controller.error(fromNative(err))
            }
          },
        },
        { highWaterMark: 0 },
      )
    }
    return this.#stream
  }

  /** The whole body; a view into the batch when it came whole (callers copy before handing it out). */
  async #all(): Promise<Buffer> {
    this.#claim()
    const kind = this.#bodyKind
    if (kind === BODY_FULL) return this.#wholeBody()
    if (kind === BODY_STREAM) {
      const raw = this.server.takeBodyStream(this.id)
      if (!raw) return Buffer.alloc(0)
      try {
        return await raw.readAll()
      } catch (err) {
        throw fromNative(err)
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

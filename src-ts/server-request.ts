import { headersFromFlat } from './body.js'
import { fromNative } from './errors.js'
import type { Binding } from './native.js'

/** A certificate as seen by the server. */
export interface CertificateInfo {
  subject: string
  subjectCn: string | null
  issuer: string
  subjectAltNames: string[]
  validFrom: string
  validTo: string
  serialNumber: string
  fingerprint256: string
  isCa: boolean
  /** The certificate, PEM. */
  raw: string
}

/** The TLS side of an HTTPS request. */
export interface ServerTlsInfo {
  /** `TLSv1.2` or `TLSv1.3`. */
  protocol: string
  cipher: string
  alpnProtocol: string | null
  /** The host name the client asked for with SNI. */
  serverName: string | null
  /** The client's certificates, leaf first; empty without client authentication. */
  chain: CertificateInfo[]
}

const BODY_FULL = 1
const BODY_STREAM = 2

function view(buf: Buffer): Uint8Array {
  return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength)
}

/**
 * A request received by the server, shaped like WHATWG `Request`. Everything is read from the
 * native side lazily: an unread header list or body costs nothing.
 */
export class ServerRequest {
  #native: Binding.BindingRequest
  #host: string
  #scheme: string
  #url: string | undefined
  #parsed: URL | undefined
  #headers: Headers | undefined
  #cookies: Map<string, string> | undefined
  #used = false
  #stream: ReadableStream<Uint8Array> | undefined
  #tls: ServerTlsInfo | null | undefined

  /** @internal */
  constructor(raw: Binding.BindingRequest, host: string, scheme: string) {
    this.#native = raw
    this.#host = host
    this.#scheme = scheme
  }

  /** The request method. */
  get method(): string {
    return this.#native.method
  }

  /** The absolute URL, built from the `Host` header and the request target. */
  get url(): string {
    if (this.#url === undefined) {
      const target = this.#native.target
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
        this.#parsed = new URL(this.#native.target, `${this.#scheme}://${this.#host}`)
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
    return this.#native.httpVersion
  }

  /** Request headers; repeated fields are kept (`get` joins them). */
  get headers(): Headers {
    this.#headers ??= headersFromFlat(this.#native.headers)
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
  get tls(): ServerTlsInfo | null {
    if (this.#tls === undefined) {
      const json = this.#native.tlsJson
      this.#tls = json ? (JSON.parse(json) as ServerTlsInfo) : null
    }
    return this.#tls
  }

  /** The client's IP address (empty on a unix socket). */
  get remoteAddress(): string {
    return this.#native.remoteAddress
  }

  /** The client's port (0 on a unix socket). */
  get remotePort(): number {
    return this.#native.remotePort
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
    const kind = this.#native.bodyKind
    if (kind !== BODY_FULL && kind !== BODY_STREAM) return null
    this.#claim()
    const raw = this.#native
    if (kind === BODY_FULL) {
      const whole = raw.takeBody()
      this.#stream = new ReadableStream<Uint8Array>({
        start(controller) {
          if (whole) controller.enqueue(view(whole))
          controller.close()
        },
      })
    } else {
      this.#stream = new ReadableStream<Uint8Array>(
        {
          async pull(controller) {
            try {
              const chunk = await raw.readChunk()
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

  async #all(): Promise<Buffer> {
    this.#claim()
    const kind = this.#native.bodyKind
    if (kind === BODY_FULL) return this.#native.takeBody() ?? Buffer.alloc(0)
    if (kind === BODY_STREAM) {
      try {
        return await this.#native.readAll()
      } catch (err) {
        throw fromNative(err)
      }
    }
    return Buffer.alloc(0)
  }

  /** The body as bytes. */
  async bytes(): Promise<Uint8Array> {
    return view(await this.#all())
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

  /** The body parsed as form data (`application/x-www-form-urlencoded` or `multipart/form-data`). */
  async formData(): Promise<FormData> {
    const type = this.headers.get('content-type') ?? ''
    const body = await this.#all()
    return new Response(body as Uint8Array<ArrayBuffer>, { headers: { 'content-type': type } }).formData()
  }

  /** @internal */
  get native(): Binding.BindingRequest {
    return this.#native
  }
}

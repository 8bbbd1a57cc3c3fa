import { type BodyInit, encodeBody, flattenHeaders, hasHeader, headersFromFlat } from './body.js'
import { AbortError, fromNative, InvalidArgumentError } from './errors.js'
import { type Binding, native } from './native.js'

/** Options of a {@link Client}. Times are in milliseconds. */
export interface ClientOptions {
  /** Time allowed for the whole request, body included. Default: none. */
  timeout?: number
  /** Time allowed to open the TCP connection. Default 10 000. */
  connectTimeout?: number
  /** How long an idle keep-alive connection stays in the pool. Default 60 000. */
  poolIdleTimeout?: number
  /** Idle connections kept per origin. Default 64. */
  maxIdlePerHost?: number
  /** Largest response body read into memory, in bytes. Default 256 MiB. */
  maxResponseSize?: number
  /** Headers sent with every request unless the request sets them. */
  headers?: HeadersInit
}

/** Per-request options, shaped like WHATWG `RequestInit`. */
export interface RequestInit {
  method?: string
  headers?: HeadersInit
  body?: BodyInit
  signal?: AbortSignal | null
}

function checkTime(name: string, value: number | undefined): number | undefined {
  if (value === undefined) return undefined
  if (!Number.isFinite(value) || value < 0 || value > 0xffffffff) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `${name} must be a number of milliseconds`)
  }
  return Math.floor(value)
}

/** A response from the hypersock client, shaped like WHATWG `Response`. */
export class Response {
  /** Status code. */
  readonly status: number
  /** Response headers; `getSetCookie()` gives each `Set-Cookie` apart. */
  readonly headers: Headers
  /** The URL that produced this response. */
  readonly url: string
  #body: Buffer | null

  /** @internal */
  constructor(raw: Binding.BindingResponse) {
    this.status = raw.status
    this.headers = headersFromFlat(raw.headers)
    this.url = raw.url
    this.#body = raw.body
  }

  /** True for a 2xx status. */
  get ok(): boolean {
    return this.status >= 200 && this.status < 300
  }

  /** True once a body method has been called. */
  get bodyUsed(): boolean {
    return this.#body === null
  }

  #take(): Buffer {
    const body = this.#body
    if (body === null) throw new TypeError('the body has already been read')
    this.#body = null
    return body
  }

  /** The body as bytes, without copying. */
  async bytes(): Promise<Uint8Array> {
    const body = this.#take()
    return new Uint8Array(body.buffer, body.byteOffset, body.byteLength)
  }

  /** The body as an ArrayBuffer. */
  async arrayBuffer(): Promise<ArrayBuffer> {
    const body = this.#take()
    return body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength) as ArrayBuffer
  }

  /** The body decoded as UTF-8. */
  async text(): Promise<string> {
    return this.#take().toString('utf8')
  }

  /** The body parsed as JSON. */
  async json(): Promise<unknown> {
    return JSON.parse(await this.text())
  }
}

/**
 * An HTTP client with its own pool of keep-alive connections.
 *
 * ```ts
 * const client = new Client({ timeout: 30_000 })
 * const res = await client.fetch('http://127.0.0.1:8080/orders', { method: 'POST', body: '{}' })
 * ```
 */
export class Client {
  #native: Binding.BindingClient
  #headers: string[]

  constructor(options: ClientOptions = {}) {
    this.#native = new native.BindingClient({
      connectTimeoutMs: checkTime('connectTimeout', options.connectTimeout ?? 10_000),
      timeoutMs: checkTime('timeout', options.timeout),
      poolIdleTimeoutMs: checkTime('poolIdleTimeout', options.poolIdleTimeout ?? 60_000) as number,
      poolMaxIdlePerHost: options.maxIdlePerHost ?? 64,
      maxResponseSize: options.maxResponseSize ?? 256 * 1024 * 1024,
    })
    this.#headers = flattenHeaders(options.headers)
  }

  /** Sends a request, WHATWG `fetch` style. Rejects with a {@link HypersockError} on failure. */
  async fetch(input: string | URL, init: RequestInit = {}): Promise<Response> {
    let url: URL
    try {
      url = new URL(String(input))
    } catch (cause) {
      throw new InvalidArgumentError('ERR_INVALID_URL', `invalid URL ${JSON.stringify(String(input))}`, { cause })
    }
    const method = (init.method ?? 'GET').toUpperCase()
    const headers = flattenHeaders(init.headers)
    for (let i = 0; i < this.#headers.length; i += 2) {
      if (!hasHeader(headers, (this.#headers[i] as string).toLowerCase())) {
        headers.push(this.#headers[i] as string, this.#headers[i + 1] as string)
      }
    }
    const { data, type } = encodeBody(init.body)
    if (data !== null && (method === 'GET' || method === 'HEAD')) {
      throw new TypeError(`a ${method} request cannot have a body`)
    }
    if (type && !hasHeader(headers, 'content-type')) headers.push('content-type', type)
    const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data
    const signal = init.signal
    if (signal?.aborted) throw new AbortError(undefined, { cause: signal.reason })
    const pending = this.#native.request(method, url.href, headers, bytes).then(
      (raw) => new Response(raw),
      (err: unknown) => {
        throw fromNative(err)
      },
    )
    if (!signal) return pending
    return new Promise<Response>((resolve, reject) => {
      const onAbort = () => reject(new AbortError(undefined, { cause: signal.reason }))
      signal.addEventListener('abort', onAbort, { once: true })
      pending.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
    })
  }
}

let defaultClient: Client | undefined

/** WHATWG-style `fetch` over a shared default {@link Client}. */
export function fetch(input: string | URL, init?: RequestInit): Promise<Response> {
  defaultClient ??= new Client()
  return defaultClient.fetch(input, init)
}

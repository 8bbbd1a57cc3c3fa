import { type ClientBodyInit, chunkBytes, prepareBody } from './client-body.js'
import { type CookieJar, nativeJar } from './cookie-jar.js'
import { AbortError, fromNative, HttpError, HypersockError, InvalidArgumentError } from './errors.js'
import { type Binding, native } from './native.js'
import { type ProxyOptions, proxyOptions } from './proxy.js'
import { CLIENT_TLS_FIELDS, checkTlsOptions, type PeerCertificate, parseTls, type TlsDetails } from './tls.js'
import { checkOptions, optionKeys } from './validate.js'
import { flattenHeaders, hasHeader, headersFromFlat } from './wire/headers.js'

export type { ProxyOptions } from './proxy.js'

/** TLS options of a {@link Client}. */
export interface ClientTlsOptions {
  /** Trusted CA certificates (PEM). When given, they replace the default (Mozilla/webpki) roots unless `defaultRoots: true`. */
  ca?: string | Buffer | Array<string | Buffer>
  /** Keep the default roots beside `ca`. Default: true without `ca`, false with it. */
  defaultRoots?: boolean
  /** Client certificate chain (PEM), for mutual TLS. */
  cert?: string | Buffer
  /** Private key (PEM) of `cert`. */
  key?: string | Buffer
  /** Verify the server certificate and host name. Default true; only an explicit `false` turns it off. */
  rejectUnauthorized?: boolean
  /** Lowest TLS version. Default `'TLSv1.2'`. */
  minVersion?: 'TLSv1.2' | 'TLSv1.3'
  /** Highest TLS version. Default `'TLSv1.3'`. */
  maxVersion?: 'TLSv1.2' | 'TLSv1.3'
  /** Name sent in SNI and checked against the certificate, instead of the URL's host. */
  servername?: string
}

/** Redirect options: a mode, or the mode with limits. */
export type RedirectOptions =
  | 'follow'
  | 'manual'
  | 'error'
  | {
      /** Default `'follow'`. */
      mode?: 'follow' | 'manual' | 'error'
      /** Most redirects followed. Default 10. */
      max?: number
      /** Allow https -> http redirects. Default false. */
      allowInsecure?: boolean
    }

/** Retry options: a number of attempts, or the full policy. */
export type RetryOptions =
  | number
  | {
      /** Attempts in all, the first included. Default 3 when `retry` is given as an object. */
      attempts?: number
      /** First backoff, doubled each time, with jitter. Default 100 ms. */
      baseDelay?: number
      /** Cap on one backoff. Default 10 000 ms. */
      maxDelay?: number
      /** Statuses retried. Default 408, 429, 500, 502, 503, 504. */
      statuses?: number[]
      /** Methods retried. Default the idempotent ones: GET HEAD OPTIONS PUT DELETE TRACE. */
      methods?: string[]
      /** Longest `Retry-After` honoured; a longer one returns the response. Default 60 000 ms. */
      maxRetryAfter?: number
      /**
       * Decides instead of the policy. Called for every error and every status >= 400 while attempts
       * are left and the body can be sent again; return true to retry, false to stop, or undefined
       * to keep the policy's choice (`ctx.willRetry`). A hook that throws keeps the policy's choice.
       */
      shouldRetry?: (ctx: RetryContext) => boolean | undefined | Promise<boolean | undefined>
    }

/** What a retry hook is told about a failed attempt. */
export interface RetryContext {
  /** The attempt that failed, from 1. */
  attempt: number
  /** The request's method. */
  method: string
  /** The URL of the attempt that failed. */
  url: string
  /** The status, when a response came. */
  status: number | null
  /** The error, when no response came. */
  error: { code: string; message: string } | null
  /** What the policy alone would do. */
  willRetry: boolean
  /** Wait before the next attempt, in ms (backoff with jitter, or `Retry-After`). */
  delay: number
}

/** A request as the hooks see it: they may change its URL, method and headers. */
export interface HookRequest {
  /** The URL to request; a hook may replace it. */
  url: string
  /** The method, upper case; a hook may replace it. */
  method: string
  /** The request headers; a hook may change them in place. */
  headers: Headers
}

/** Functions run around each request `fetch` sends (see {@link ClientOptions.hooks}). */
export interface ClientHooks {
  /**
   * Run in order before the request is sent (once per `fetch`: redirects and retries are driven
   * by the engine); each may change `request.url`, `request.method` and `request.headers`.
   */
  beforeRequest?: Array<(request: HookRequest) => void | Promise<void>>
  /**
   * Run in order once the response head has arrived; one that returns a response replaces it
   * for the hooks after it and for the caller (e.g. after refreshing a token and sending again).
   */
  afterResponse?: Array<
    (response: ClientResponse, request: HookRequest) => ClientResponse | undefined | Promise<ClientResponse | undefined>
  >
  /**
   * Run in order before each retry the client makes (after `retry.shouldRetry`, when the
   * decision is to retry), e.g. to log it or refresh a token kept outside the request. One that
   * throws stops the retries: the attempt's response or error is the result.
   */
  beforeRetry?: Array<(ctx: RetryContext) => void | Promise<void>>
  /**
   * Run in order before each redirect the client follows, with the next request as the
   * engine's rules made it (credentials dropped when it leaves the origin, body headers dropped
   * when it became a GET). Each may change `request.headers` (e.g. add a token for a host it
   * trusts); `request.url` and `request.method` are for reading. One that throws refuses the
   * redirect: the fetch fails with `ERR_REDIRECT_REFUSED`.
   */
  beforeRedirect?: Array<(request: HookRequest, redirect: { from: string; status: number }) => void | Promise<void>>
}

/** Sends a request: `client.fetch`, or the next step of a {@link Client.compose} chain. */
export type Dispatch = (input: string | URL | globalThis.Request, init?: RequestInit) => Promise<ClientResponse>

/**
 * One step of a {@link Client.compose} chain: given the next step, returns this one. It may
 * change the request, answer it itself (a cache), or look at and replace the response.
 */
export type Interceptor = (next: Dispatch) => Dispatch

/** Options of a {@link Client}. Times are in milliseconds, sizes in bytes. */
export interface ClientOptions {
  /** Resolves relative request URLs (`client.fetch('/users')`), as `new URL(input, baseURL)`. */
  baseURL?: string | URL
  /** Functions run before each request and after each response. */
  hooks?: ClientHooks
  /** Time allowed for the whole request (redirects, retries and body included). Default: none. */
  timeout?: number
  /** Time allowed to connect (TCP, proxy tunnel, TLS handshake). Default 10 000. */
  connectTimeout?: number
  /** Time allowed until the response head arrives, per attempt. Default: none. */
  headersTimeout?: number
  /** Longest silence while the response body is read. Default: none. */
  bodyTimeout?: number
  /** How long an idle keep-alive connection stays in the pool. Default 60 000. */
  poolIdleTimeout?: number
  /** Idle connections kept per origin. Default 64. */
  maxIdlePerHost?: number
  /** Most connections open at once per origin; further requests wait. Default: no limit. */
  maxConnectionsPerHost?: number
  /** Largest response body read by `text()`/`json()`/`bytes()`, in bytes. Default 256 MiB. */
  maxResponseSize?: number
  /** Headers sent with every request unless the request sets them. */
  headers?: HeadersInit
  /** `'auto'` (h2 by ALPN over TLS), `'always'` (also h2c prior knowledge over plain TCP), `'never'`. Default `'auto'`. */
  http2?: 'auto' | 'always' | 'never'
  /** TLS settings. */
  tls?: ClientTlsOptions
  /** Redirect handling. Default: follow up to 10. */
  redirect?: RedirectOptions
  /** Retries. Default: none. */
  retry?: RetryOptions
  /** Decode gzip, deflate, br and zstd bodies and send `Accept-Encoding`. Default true. */
  decompress?: boolean
  /** Largest decoded body, against decompression bombs. Default 1 GiB. */
  maxDecodedSize?: number
  /** HTTP proxy. Default: none (the environment is read only with `'env'`). */
  proxy?: ProxyOptions
  /** Send every request over this unix socket. */
  socketPath?: string
  /** Cookies stored from responses and sent with requests, redirects included. */
  cookieJar?: CookieJar
}

/** Progress of an upload or download. `total` is null when unknown. */
export interface Progress {
  /** Bytes transferred so far. */
  loaded: number
  /** Bytes in all, when known (a body of known length, or `content-length`); null otherwise. */
  total: number | null
}

/** Per-request options, shaped like WHATWG `RequestInit`. */
export interface RequestInit {
  /** Default `GET` (`POST` and the like as given; the method is sent upper case). */
  method?: string
  /** Headers of this request, added to the client's `headers` (these win). */
  headers?: HeadersInit
  /** The request body (not allowed with `GET` or `HEAD`). */
  body?: ClientBodyInit
  /** Aborts the request, its body included, with an `AbortError`. */
  signal?: AbortSignal | null
  /**
   * Told how many request-body bytes have been handed to the connection: for a body in memory,
   * every 64 KiB and at its end (from 0 again if a redirect or retry sends it anew); for a
   * stream, at each of its chunks.
   */
  onUploadProgress?: (progress: Progress) => void
  /** Told how many response-body bytes have arrived. */
  onDownloadProgress?: (progress: Progress) => void
  /** This request's redirect mode instead of the client's (`'manual'` returns the 3xx as it is). */
  redirect?: 'follow' | 'manual' | 'error'
  /** This request's time limit in ms instead of the client's `timeout`. */
  timeout?: number
  /** This request's attempts (the first included) instead of the client's `retry.attempts`. */
  retry?: number
}

/** One redirect that was followed. */
export interface RedirectHop {
  /** The URL that answered with the redirect. */
  url: string
  /** Its status (301, 302, 303, 307 or 308). */
  status: number
  /** The URL it pointed to, resolved. */
  location: string
}

function checkTime(name: string, value: number | undefined): number | undefined {
  if (value === undefined) return undefined
  if (!Number.isFinite(value) || value < 0 || value > 0xffffffff) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `${name} must be a number of milliseconds`)
  }
  return Math.floor(value)
}

function checkCount(name: string, value: number | undefined, min: number): number | undefined {
  if (value === undefined) return undefined
  if (!Number.isInteger(value) || value < min || value > 0xffffffff) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `${name} must be an integer >= ${min}`)
  }
  return value
}

const NO_BODY = { bytes: null, stream: null, type: null, length: null } as const

/** Bodies up to this size come back from Rust in the same call as the head. */
const INLINE_MAX = 256 * 1024
/** Statuses whose responses have no body (WHATWG "null body status"). */
const NULL_BODY_STATUS = new Set([101, 103, 204, 205, 304])
/** Chunk size of streamed response bodies. */
const CHUNK = 1024 * 1024
/** Chunk size of a body whose progress is reported: one report per 64 KiB at least. */
const PROGRESS_CHUNK = 64 * 1024

type Cleanup = () => void

/** @internal What a mock dispatcher is given: the request as the client would send it. */
export interface MockedRequest {
  url: string
  method: string
  /** Flat `[name, value, ...]`, the client's default headers included. */
  headers: string[]
  body: Uint8Array | null
  signal: AbortSignal | null | undefined
}

/**
 * @internal A mock dispatcher (`hypersock/testing`'s `MockAgent`): the response for a request,
 * or undefined to send it for real. It may throw (a mocked network error).
 */
export type MockDispatcher = (request: MockedRequest) => Promise<Binding.BindingResponse | undefined>

/**
 * Where the installed mock dispatcher lives: on `globalThis` under a registered symbol, so that
 * `hypersock` and `hypersock/testing` share it also when each is its own CommonJS bundle.
 */
const MOCK = Symbol.for('hypersock.mockDispatcher')
const mockHolder = globalThis as { [MOCK]?: MockDispatcher }

/** @internal Installs (or with undefined removes) the mock dispatcher every client consults. */
export function setMockDispatcher(dispatcher: MockDispatcher | undefined): void {
  mockHolder[MOCK] = dispatcher
}

/** @internal The installed mock dispatcher, if any (`EventSource` consults it too). */
export function getMockDispatcher(): MockDispatcher | undefined {
  return mockHolder[MOCK]
}

/** Reads a stream to the end, failing with `ERR_BODY_TOO_LARGE` past `max` bytes. */
async function readWithin(stream: ReadableStream<Uint8Array>, max: number): Promise<Buffer> {
  const parts: Uint8Array[] = []
  let size = 0
  for await (const chunk of stream as unknown as AsyncIterable<Uint8Array>) {
    size += chunk.byteLength
    if (size > max) {
      await stream.cancel().catch(() => {})
      throw new HttpError('ERR_BODY_TOO_LARGE', `body larger than the limit of ${max} bytes`)
    }
    parts.push(chunk)
  }
  return Buffer.concat(parts, size)
}

async function streamBytes(stream: AsyncIterable<Uint8Array | string>): Promise<Uint8Array> {
  const parts: Uint8Array[] = []
  for await (const chunk of stream) parts.push(chunkBytes(chunk))
  return Buffer.concat(parts)
}

/**
 * A response from the hypersock client, shaped like WHATWG `Response` (what `fetch` resolves
 * with). Made only by the client; to build a response yourself (in a `serve` handler), use the
 * global `Response`, which hypersock also exports as `Response`.
 */
export class ClientResponse {
  /** Status code. */
  readonly status: number
  /** The final URL (after redirects). */
  readonly url: string
  /** `'HTTP/1.1'` or `'HTTP/2'`. */
  readonly httpVersion: string
  /** Redirects followed, in order. */
  readonly redirects: readonly RedirectHop[]
  /** Attempts made for the final request (more than 1 after retries). */
  readonly attempts: number
  /** Serial number of the pooled connection that carried the response. */
  readonly connectionId: number
  #first: Buffer | null
  #rest: Binding.BindingBodyReader | null
  #tlsJson: string | null
  #tls: TlsDetails | null | undefined
  #used = false
  #stream: ReadableStream<Uint8Array> | null = null
  #maxSize: number
  #onProgress: ((p: Progress) => void) | undefined
  #cleanup: Cleanup
  #loaded = 0
  #total: number | null = null
  #rawHeaders: string[]
  #headers: Headers | undefined
  /** The reason phrase the server sent. */
  #statusText: string
  /** A response that has no body (to HEAD; 204, 205, 304): `body` is null, reads give nothing. */
  #nullBody: boolean
  /** The body to read instead of `#first`/`#rest`, once `clone()` split it in two. */
  #split: ReadableStream<Uint8Array> | null = null

  /** @internal */
  constructor(
    raw: Binding.BindingResponse,
    maxSize: number,
    onProgress: ((p: Progress) => void) | undefined,
    cleanup: Cleanup,
    head = false,
  ) {
    this.status = raw.status
    this.#statusText = raw.statusText
    this.#nullBody = head || NULL_BODY_STATUS.has(raw.status)
    this.#rawHeaders = raw.headers
    this.url = raw.url
    this.httpVersion = raw.version
    this.redirects = raw.redirects
    this.attempts = raw.attempts
    this.connectionId = raw.connectionId
    this.#first = raw.body
    this.#rest = raw.rest ?? null
    this.#tlsJson = raw.tls ?? null
    this.#maxSize = maxSize
    this.#onProgress = onProgress
    this.#cleanup = cleanup
    if (onProgress) {
      const length = this.headers.get('content-length')
      this.#total = length !== null && /^\d+$/.test(length) ? Number(length) : null
      this.#progress(raw.body.byteLength)
    }
    if (!this.#rest) cleanup()
  }

  /** ClientResponse headers (made on first use); `getSetCookie()` gives each `Set-Cookie` apart. */
  get headers(): Headers {
    this.#headers ??= headersFromFlat(this.#rawHeaders)
    return this.#headers
  }

  /** Reports `n` more bytes, in steps of at most 64 KiB (a chunk off the socket can be larger). */
  #progress(n: number): void {
    const report = this.#onProgress
    if (!report) return
    do {
      const step = Math.min(n, PROGRESS_CHUNK)
      this.#loaded += step
      n -= step
      report({ loaded: this.#loaded, total: this.#total })
    } while (n > 0)
  }

  /** True for a 2xx status. */
  get ok(): boolean {
    return this.status >= 200 && this.status < 300
  }

  /** True when at least one redirect was followed. */
  get redirected(): boolean {
    return this.redirects.length > 0
  }

  /** The TLS handshake (protocol, cipher, ALPN, certificate chain), or null over plain TCP. */
  get tls(): TlsDetails | null {
    if (this.#tls === undefined) this.#tls = this.#tlsJson ? parseTls(this.#tlsJson) : null
    return this.#tls
  }

  /** The server's certificate, or null over plain TCP. */
  get peerCertificate(): PeerCertificate | null {
    return this.tls?.chain[0] ?? null
  }

  /** True once the body has been read or its stream taken. */
  get bodyUsed(): boolean {
    return this.#used
  }

  /**
   * The reason phrase of the status (`OK`, `Not Found`, ...): the standard one for HTTP/1.1, empty
   * over HTTP/2 (which has none), as Node's fetch gives it for a server that sends the standard one.
   */
  get statusText(): string {
    return this.#statusText
  }

  /** `'basic'`, as Node's fetch says of every response it gets. */
  get type(): 'basic' {
    return 'basic'
  }

  /**
   * A second response with the same head and a copy of the body (the body is split in two with
   * `ReadableStream.tee`, so both may be read, at the pace of the faster). A TypeError once the
   * body has been read.
   */
  clone(): ClientResponse {
    if (this.#used) throw new TypeError('the body has already been read')
    const copy = new ClientResponse(
      {
        status: this.status,
        statusText: this.#statusText,
        headers: this.#rawHeaders,
        body: Buffer.alloc(0),
        url: this.url,
        version: this.httpVersion,
        tls: this.#tlsJson ?? undefined,
        redirects: [...this.redirects],
        attempts: this.attempts,
        connectionId: this.connectionId,
      },
      this.#maxSize,
      undefined,
      () => {},
      this.#nullBody,
    )
    if (this.#rest !== null || this.#split !== null) {
      const [mine, theirs] = (this.#split ?? this.#openStream()).tee()
      this.#split = mine
      copy.#split = theirs
    } else {
      copy.#first = this.#first
    }
    return copy
  }

  /**
   * The body as a web `ReadableStream`, read from the connection only as fast as it is consumed
   * (backpressure reaches the server through TCP / HTTP/2 flow control).
   */
  get body(): ReadableStream<Uint8Array> | null {
    if (this.#nullBody) return null
    if (this.#stream) return this.#stream
    if (this.#used) throw new TypeError('the body has already been read')
    this.#used = true
    this.#stream = this.#split ?? this.#openStream()
    this.#split = null
    return this.#stream
  }

  /** A stream over `#first` and `#rest` (which it takes). */
  #openStream(): ReadableStream<Uint8Array> {
    let first: Buffer | null = this.#first
    this.#first = null
    const rest = this.#rest
    this.#rest = null
    const cleanup = this.#cleanup
    return new ReadableStream<Uint8Array>(
      {
        pull: async (controller) => {
          if (first) {
            const chunk = first
            first = null
            if (chunk.byteLength > 0) {
              controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength))
              return
            }
          }
          if (!rest) {
            controller.close()
            return
          }
          try {
            const chunk = await rest.read(this.#onProgress ? PROGRESS_CHUNK : CHUNK)
            if (chunk === null) {
              cleanup()
              controller.close()
              return
            }
            this.#progress(chunk.byteLength)
            controller.enqueue(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.byteLength))
          } catch (err) {
            cleanup()
            controller.error(fromNative(err))
          }
        },
        cancel: () => {
          // Release the connection now, as undici does, not when the reader is collected.
          rest?.close()
          cleanup()
        },
      },
      { highWaterMark: 0 },
    )
  }

  async #take(): Promise<Buffer> {
    if (this.#nullBody) return Buffer.alloc(0)
    if (this.#used) throw new TypeError('the body has already been read')
    this.#used = true
    if (this.#split !== null) {
      const split = this.#split
      this.#split = null
      return readWithin(split, this.#maxSize)
    }
    const first = this.#first ?? Buffer.alloc(0)
    this.#first = null
    const rest = this.#rest
    this.#rest = null
    if (!rest) return first
    try {
      if (this.#onProgress) return await this.#takeReporting(first, rest)
      const more = await rest.readAll(Math.max(0, this.#maxSize - first.byteLength))
      return first.byteLength === 0 ? more : Buffer.concat([first, more])
    } catch (err) {
      throw fromNative(err)
    } finally {
      this.#cleanup()
    }
  }

  /** Reads the rest in 64 KiB steps, reporting progress after each, within `maxResponseSize`. */
  async #takeReporting(first: Buffer, rest: Binding.BindingBodyReader): Promise<Buffer> {
    const chunks = [first]
    let size = first.byteLength
    for (;;) {
      const chunk = await rest.read(PROGRESS_CHUNK)
      if (chunk === null) return Buffer.concat(chunks, size)
      size += chunk.byteLength
      if (size > this.#maxSize) {
        rest.close()
        throw new HttpError('ERR_BODY_TOO_LARGE', `body larger than the limit of ${this.#maxSize} bytes`)
      }
      chunks.push(chunk)
      this.#progress(chunk.byteLength)
    }
  }

  /** The body as bytes. */
  async bytes(): Promise<Uint8Array> {
    const body = await this.#take()
    return new Uint8Array(body.buffer, body.byteOffset, body.byteLength)
  }

  /** The body as an ArrayBuffer. */
  async arrayBuffer(): Promise<ArrayBuffer> {
    const body = await this.#take()
    return body.buffer.slice(body.byteOffset, body.byteOffset + body.byteLength) as ArrayBuffer
  }

  /** The body as a Blob. */
  async blob(): Promise<Blob> {
    return new Blob([await this.arrayBuffer()], { type: this.headers.get('content-type') ?? '' })
  }

  /** The body decoded as UTF-8. */
  async text(): Promise<string> {
    return (await this.#take()).toString('utf8')
  }

  /** The body parsed as JSON. */
  async json(): Promise<unknown> {
    return JSON.parse(await this.text())
  }
}

/** Connection counters of a client's pool. */
export interface PoolStats {
  /** Connections open now (busy or idle). */
  open: number
  /** Connections opened since the client was made. */
  opened: number
}

function retryHook(
  retry: RetryOptions | undefined,
  before: ClientHooks['beforeRetry'],
): ((ctx: Binding.BindingRetryContext) => Promise<boolean>) | undefined {
  const hook = typeof retry === 'object' ? retry.shouldRetry : undefined
  if (!hook && !before?.length) return undefined
  return async (raw) => {
    const ctx: RetryContext = {
      attempt: raw.attempt,
      method: raw.method,
      url: raw.url,
      status: raw.status ?? null,
      error: raw.errorCode ? { code: raw.errorCode, message: raw.errorMessage ?? '' } : null,
      willRetry: raw.willRetry,
      delay: raw.delayMs,
    }
    let retrying = raw.willRetry
    if (hook) {
      try {
        const answer = await hook(ctx)
        if (answer !== undefined) retrying = !!answer
      } catch {
        // A shouldRetry that throws keeps the policy's choice.
      }
    }
    if (!retrying || !before) return retrying
    try {
      for (const run of before) await run({ ...ctx, willRetry: true })
    } catch {
      return false
    }
    return true
  }
}

function redirectOptions(r: RedirectOptions | undefined): { mode?: string; max?: number; allowInsecure?: boolean } {
  if (r === undefined) return {}
  if (typeof r === 'string') return { mode: r }
  return { mode: r.mode, max: checkCount('redirect.max', r.max, 0), allowInsecure: r.allowInsecure }
}

/** @internal The addon's form of client TLS options (the HTTP client and the Redis adapter). */
export function nativeTlsOptions(tls: ClientTlsOptions | undefined): Binding.BindingTlsOptions | undefined {
  checkTlsOptions('tls', tls, CLIENT_TLS_FIELDS)
  return (
    tls && {
      ca: tls.ca === undefined ? undefined : [tls.ca].flat().map(String),
      defaultRoots: tls.defaultRoots,
      cert: tls.cert === undefined ? undefined : String(tls.cert),
      key: tls.key === undefined ? undefined : String(tls.key),
      rejectUnauthorized: tls.rejectUnauthorized ?? true,
      minVersion: tls.minVersion,
      maxVersion: tls.maxVersion,
      serverName: tls.servername,
    }
  )
}

const CLIENT_KEYS = optionKeys<ClientOptions>({
  baseURL: true,
  hooks: true,
  timeout: true,
  connectTimeout: true,
  headersTimeout: true,
  bodyTimeout: true,
  poolIdleTimeout: true,
  maxIdlePerHost: true,
  maxConnectionsPerHost: true,
  maxResponseSize: true,
  headers: true,
  http2: true,
  tls: true,
  redirect: true,
  retry: true,
  decompress: true,
  maxDecodedSize: true,
  proxy: true,
  socketPath: true,
  cookieJar: true,
})
const RETRY_KEYS = optionKeys<Exclude<RetryOptions, number>>({
  attempts: true,
  baseDelay: true,
  maxDelay: true,
  statuses: true,
  methods: true,
  maxRetryAfter: true,
  shouldRetry: true,
})
const HOOK_KEYS = optionKeys<ClientHooks>({
  beforeRequest: true,
  afterResponse: true,
  beforeRetry: true,
  beforeRedirect: true,
})
/** A URL with a scheme: not resolved against `baseURL`. */
const ABSOLUTE_URL = /^[a-z][a-z\d+.-]*:/i
const REDIRECT_KEYS = optionKeys<Exclude<RedirectOptions, string>>({ mode: true, max: true, allowInsecure: true })
/**
 * The keys of a request's `init`: ours, and those of WHATWG `RequestInit` that have no meaning
 * outside a browser and are accepted and ignored, as Node's own `fetch` does.
 */
const REQUEST_INIT_KEYS: ReadonlySet<string> = new Set([
  ...optionKeys<RequestInit>({
    method: true,
    headers: true,
    body: true,
    signal: true,
    onUploadProgress: true,
    onDownloadProgress: true,
    redirect: true,
    timeout: true,
    retry: true,
  }),
  'cache',
  'credentials',
  'integrity',
  'keepalive',
  'mode',
  'priority',
  'referrer',
  'referrerPolicy',
  'window',
  'duplex',
])

/**
 * The init of a WHATWG `Request` given to `fetch`, with `init`'s own fields over it (as
 * `fetch(request, init)` does). A `Request`'s redirect mode is always set (`follow` by default),
 * so it applies only when it is not `follow`: the client's own `redirect` option stays in force
 * for plain Requests.
 */
function fromRequest(request: globalThis.Request, init: RequestInit): RequestInit {
  if (request.bodyUsed) throw new TypeError('the Request body has already been read')
  return {
    method: init.method ?? request.method,
    headers: init.headers ?? request.headers,
    body: init.body !== undefined ? init.body : (request.body as ClientBodyInit | null),
    signal: init.signal !== undefined ? init.signal : request.signal,
    onUploadProgress: init.onUploadProgress,
    onDownloadProgress: init.onDownloadProgress,
    redirect: init.redirect ?? (request.redirect === 'follow' ? undefined : (request.redirect as 'manual' | 'error')),
    timeout: init.timeout,
    retry: init.retry,
  }
}

/** The addon's form of a request's own `redirect`, `timeout` and `retry`, or undefined when it has none. */
function requestOverrides(init: RequestInit): Binding.BindingRequestOverrides | undefined {
  const { redirect, timeout, retry } = init
  if (redirect === undefined && timeout === undefined && retry === undefined) return undefined
  if (redirect !== undefined && redirect !== 'follow' && redirect !== 'manual' && redirect !== 'error') {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', "redirect must be 'follow', 'manual' or 'error'")
  }
  return { redirect, timeoutMs: checkTime('timeout', timeout), retryAttempts: checkCount('retry', retry, 1) }
}

/** Checks `hooks` (arrays of functions under known names); undefined when there are none. */
function checkHooks(hooks: ClientHooks | undefined): ClientHooks | undefined {
  if (hooks === undefined) return undefined
  checkOptions('hooks', hooks, HOOK_KEYS)
  for (const [name, list] of Object.entries(hooks)) {
    if (list !== undefined && (!Array.isArray(list) || list.some((f) => typeof f !== 'function'))) {
      throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `hooks.${name} must be an array of functions`)
    }
  }
  const { beforeRequest = [], afterResponse = [], beforeRetry = [], beforeRedirect = [] } = hooks
  return beforeRequest.length + afterResponse.length + beforeRetry.length + beforeRedirect.length > 0
    ? { beforeRequest, afterResponse, beforeRetry, beforeRedirect }
    : undefined
}

/** The engine's redirect callback running the `beforeRedirect` hooks, or undefined without any. */
function redirectHook(
  hooks: ClientHooks['beforeRedirect'],
): ((ctx: Binding.BindingRedirectContext) => Promise<string[] | null>) | undefined {
  if (!hooks?.length) return undefined
  return async (ctx) => {
    const request: HookRequest = { url: ctx.to, method: ctx.method, headers: headersFromFlat(ctx.headers) }
    const before = flattenHeaders(request.headers)
    for (const hook of hooks) await hook(request, { from: ctx.from, status: ctx.status })
    const after = flattenHeaders(request.headers)
    return after.length === before.length && after.every((v, i) => v === before[i]) ? null : after
  }
}

/** @internal Builds the native options of a client. */
export function nativeClientOptions(options: ClientOptions): Binding.BindingClientOptions {
  checkOptions('new Client()', options, CLIENT_KEYS)
  if (typeof options.retry === 'object') checkOptions('retry', options.retry, RETRY_KEYS)
  if (typeof options.redirect === 'object') checkOptions('redirect', options.redirect, REDIRECT_KEYS)
  const retry = typeof options.retry === 'number' ? { attempts: options.retry } : (options.retry ?? {})
  // A retry object without `attempts` means 3 tries; no retry option, the engine's default (1).
  const attempts = options.retry === undefined ? undefined : (retry.attempts ?? 3)
  const redirect = redirectOptions(options.redirect)
  return {
    connectTimeoutMs: checkTime('connectTimeout', options.connectTimeout),
    headersTimeoutMs: checkTime('headersTimeout', options.headersTimeout),
    bodyTimeoutMs: checkTime('bodyTimeout', options.bodyTimeout),
    timeoutMs: checkTime('timeout', options.timeout),
    poolIdleTimeoutMs: checkTime('poolIdleTimeout', options.poolIdleTimeout),
    poolMaxIdlePerHost: checkCount('maxIdlePerHost', options.maxIdlePerHost, 0),
    maxConnectionsPerHost: checkCount('maxConnectionsPerHost', options.maxConnectionsPerHost, 1),
    maxResponseSize: options.maxResponseSize,
    http2: options.http2,
    tls: nativeTlsOptions(options.tls),
    redirectMode: redirect.mode,
    maxRedirects: redirect.max,
    allowInsecureRedirect: redirect.allowInsecure,
    retryAttempts: checkCount(
      typeof options.retry === 'number'
        ? 'retry (the number of attempts in all: 1 sends once and never retries)'
        : 'retry.attempts (attempts in all: 1 sends once and never retries)',
      attempts,
      1,
    ),
    retryBaseDelayMs: checkTime('retry.baseDelay', retry.baseDelay),
    retryMaxDelayMs: checkTime('retry.maxDelay', retry.maxDelay),
    retryStatuses: retry.statuses,
    retryMethods: retry.methods,
    maxRetryAfterMs: checkTime('retry.maxRetryAfter', retry.maxRetryAfter),
    decompress: options.decompress,
    maxDecodedSize: options.maxDecodedSize,
    ...proxyOptions(options.proxy),
    unixSocket: options.socketPath,
  }
}

const clientNatives = new WeakMap<Client, Binding.BindingClient>()

/** @internal The native client behind a Client. */
/** @internal A client's `headers` (flat) and `baseURL`, which an `EventSource` on it uses too. */
export function clientDefaults(client: Client): { headers: string[]; base: string | undefined } {
  return clientDefaultsOf.get(client) ?? { headers: [], base: undefined }
}
const clientDefaultsOf = new WeakMap<Client, { headers: string[]; base: string | undefined }>()

export function nativeClient(client: Client): Binding.BindingClient {
  const n = clientNatives.get(client)
  if (!n) throw new TypeError('client must be a hypersock Client')
  return n
}

/**
 * An HTTP client with its own pool of keep-alive connections (HTTP/1.1 and HTTP/2).
 *
 * ```ts
 * const client = new Client({ timeout: 30_000, retry: { attempts: 3 } })
 * const res = await client.fetch('https://api.example.com/orders', { method: 'POST', body: '{}' })
 * ```
 */
export class Client {
  #native: Binding.BindingClient
  #handle: ReturnType<Binding.BindingClient['requestHandle']>
  #headers: string[]
  #maxSize: number
  #base: string | undefined
  #hooks: ClientHooks | undefined

  /** Makes a client with its own connection pool; the options apply to every request it sends. */
  constructor(options: ClientOptions = {}) {
    const hooks = checkHooks(options.hooks)
    // The request and response hooks run in `fetch`; retry and redirect hooks in the engine.
    this.#hooks = hooks?.beforeRequest?.length || hooks?.afterResponse?.length ? hooks : undefined
    try {
      this.#native = new native.BindingClient(
        nativeClientOptions(options),
        retryHook(options.retry, hooks?.beforeRetry),
        options.cookieJar ? nativeJar(options.cookieJar) : undefined,
        redirectHook(hooks?.beforeRedirect),
      )
    } catch (err) {
      throw fromNative(err)
    }
    clientNatives.set(this, this.#native)
    this.#handle = this.#native.requestHandle()
    this.#headers = flattenHeaders(options.headers)
    this.#maxSize = this.#native.maxResponseSize
    this.#base = options.baseURL === undefined ? undefined : new URL(String(options.baseURL)).href
    clientDefaultsOf.set(this, { headers: this.#headers, base: this.#base })
  }

  /** Connection counters of the pool. */
  get stats(): PoolStats {
    return this.#native.poolStats()
  }

  /** Sends a request, WHATWG `fetch` style. Rejects with a {@link HypersockError} on failure. */
  async fetch(input: string | URL | globalThis.Request, init: RequestInit = {}): Promise<ClientResponse> {
    checkOptions('fetch()', init, REQUEST_INIT_KEYS)
    if (input instanceof globalThis.Request) {
      init = fromRequest(input, init)
      input = input.url
    }
    if (this.#base !== undefined && typeof input === 'string' && !ABSOLUTE_URL.test(input)) {
      input = new URL(input, this.#base).href
    }
    const hooks = this.#hooks
    if (hooks === undefined) return this.#send(input, init)
    const request: HookRequest = {
      url: String(input),
      method: (init.method ?? 'GET').toUpperCase(),
      headers: new Headers(init.headers as HeadersInit | undefined),
    }
    for (const hook of hooks.beforeRequest ?? []) await hook(request)
    let response = await this.#send(request.url, { ...init, method: request.method, headers: request.headers })
    for (const hook of hooks.afterResponse ?? []) {
      const replaced = await hook(response, request)
      if (replaced !== undefined) {
        if (!(replaced instanceof ClientResponse))
          throw new TypeError('an afterResponse hook must return a ClientResponse or nothing')
        response = replaced
      }
    }
    return response
  }

  /**
   * A `fetch` through `interceptors`, the first outermost, then this client: for logging, auth
   * refresh, caching. The client itself is unchanged.
   *
   * ```ts
   * const logged = client.compose((next) => async (input, init) => {
   *   const res = await next(input, init)
   *   console.log(init?.method ?? 'GET', String(input), res.status)
   *   return res
   * })
   * await logged.fetch('https://example.com/')
   * ```
   */
  compose(...interceptors: Interceptor[]): { fetch: Dispatch } {
    for (const i of interceptors) {
      if (typeof i !== 'function')
        throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'an interceptor must be a function')
    }
    const last: Dispatch = (input, init) => this.fetch(input, init)
    return { fetch: interceptors.reduceRight<Dispatch>((next, interceptor) => interceptor(next), last) }
  }

  async #send(input: string | URL, init: RequestInit): Promise<ClientResponse> {
    // The URL is parsed once, in Rust (WHATWG rules); a bad one is ERR_INVALID_URL.
    const url = typeof input === 'string' ? input : input instanceof URL ? input.href : String(input)
    const method = (init.method ?? 'GET').toUpperCase()
    const overrides = requestOverrides(init)
    const headers = flattenHeaders(init.headers)
    for (let i = 0; i < this.#headers.length; i += 2) {
      if (!hasHeader(headers, (this.#headers[i] as string).toLowerCase())) {
        headers.push(this.#headers[i] as string, this.#headers[i + 1] as string)
      }
    }
    const signal = init.signal
    if (signal?.aborted) throw new AbortError(undefined, { cause: signal.reason })
    const body = init.body == null ? NO_BODY : await prepareBody(init.body)
    if ((body.bytes !== null || body.stream !== null) && (method === 'GET' || method === 'HEAD')) {
      throw new TypeError(`a ${method} request cannot have a body`)
    }
    if (body.type && !hasHeader(headers, 'content-type')) headers.push('content-type', body.type)
    const mockDispatcher = mockHolder[MOCK]
    if (mockDispatcher !== undefined) {
      const bytes = body.stream ? await streamBytes(body.stream) : body.bytes
      const mocked = await mockDispatcher({ url, method, headers, body: bytes, signal })
      if (mocked !== undefined) {
        return new ClientResponse(mocked, this.#maxSize, init.onDownloadProgress, () => {}, method === 'HEAD')
      }
      if (body.stream) return this.#send(input, { ...init, body: bytes })
    }
    const cancel = signal ? new native.BindingCancel() : null
    const onAbort = () => cancel?.cancel()
    const cleanup = () => signal?.removeEventListener('abort', onAbort)
    if (signal) signal.addEventListener('abort', onAbort, { once: true })
    const writer = body.stream ? new native.BindingBodyWriter() : null
    const onUpload = init.onUploadProgress
    const total = body.bytes?.byteLength ?? 0
    // An in-memory body is told of from Rust as it goes, every 64 KiB and at its end.
    const uploaded = onUpload && total > 0 ? (loaded: number) => onUpload({ loaded, total }) : undefined
    const pending = native.clientRequest(
      this.#handle,
      method,
      url,
      headers,
      body.bytes,
      writer,
      cancel,
      INLINE_MAX,
      overrides,
      uploaded,
    )
    if (writer && body.stream) void pump(body.stream, writer, onUpload)
    else if (body.bytes && onUpload && total === 0) {
      pending.then(
        () => onUpload({ loaded: 0, total: 0 }),
        () => {},
      )
    }
    try {
      const raw = await pending
      return new ClientResponse(raw, this.#maxSize, init.onDownloadProgress, cleanup, method === 'HEAD')
    } catch (err) {
      cleanup()
      const error = fromNative(err)
      if (signal?.aborted) {
        const attempts = error instanceof HypersockError ? error.attempts : undefined
        throw new AbortError(undefined, { cause: signal.reason, attempts })
      }
      throw error
    }
  }

  /** `fetch` that also reads the body: resolves to the response with its body as bytes. */
  async request(
    input: string | URL,
    init: RequestInit = {},
  ): Promise<{ status: number; headers: Headers; body: Uint8Array; response: ClientResponse }> {
    const response = await this.fetch(input, init)
    return { status: response.status, headers: response.headers, body: await response.bytes(), response }
  }
}

async function pump(
  stream: AsyncIterable<Uint8Array | string>,
  writer: Binding.BindingBodyWriter,
  onProgress: ((p: Progress) => void) | undefined,
): Promise<void> {
  let loaded = 0
  try {
    for await (const chunk of stream) {
      const bytes = chunkBytes(chunk)
      if (bytes.byteLength === 0) continue
      if (!(await writer.write(bytes))) return
      loaded += bytes.byteLength
      onProgress?.({ loaded, total: null })
    }
    writer.end()
  } catch (err) {
    writer.abort(err instanceof Error ? err.message : String(err))
  }
}

let defaultClient: Client | undefined

/** @internal The shared client of {@link fetch}. */
export function getDefaultClient(): Client {
  defaultClient ??= new Client()
  return defaultClient
}

/** @internal The shared client of {@link fetch} if it was made, without making it. */
export function peekDefaultClient(): Client | undefined {
  return defaultClient
}

/** WHATWG-style `fetch` over a shared default {@link Client}. */
export function fetch(input: string | URL | globalThis.Request, init?: RequestInit): Promise<ClientResponse> {
  return getDefaultClient().fetch(input, init)
}

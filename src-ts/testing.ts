/**
 * hypersock/testing: helpers for tests. Certificates are made on the spot (rcgen, ECDSA P-256), so
 * tests use real TLS without committed keys.
 *
 * ```ts
 * import { generateCertificate } from 'hypersock/testing'
 * const ca = generateCertificate({ isCa: true })
 * const server = generateCertificate({ ca })
 * const client = new Client({ tls: { ca: ca.cert } })
 * ```
 *
 * @module hypersock/testing
 */
import { STATUS_CODES } from 'node:http'
import { type MockedRequest, setMockDispatcher } from './client.js'
import { AbortError, fromNative, InvalidArgumentError, makeError } from './errors.js'
import { type Binding, native } from './native.js'
import { type Server, serveWebSocket, type WebSocketServeOptions } from './server.js'
import { checkOptions, optionKeys } from './validate.js'
import { type CloseEvent, WebSocket, type WebSocketOptions } from './websocket.js'
import { headersFromFlat } from './wire/headers.js'

/** A certificate and its private key, PEM. */
export interface CertificateAndKey {
  /** The certificate (PEM). */
  cert: string
  /** Its PKCS#8 private key (PEM). */
  key: string
}

/** Options of {@link generateCertificate}. */
export interface CertificateOptions {
  /** Subject common name. Default `localhost` (`hypersock test CA` for a CA). */
  commonName?: string
  /** DNS names and IP addresses. Default `localhost`, `127.0.0.1`, `::1` (none for a CA). */
  subjectAltNames?: string[]
  /** Make a CA that can sign other certificates. Default false. */
  isCa?: boolean
  /** Sign with this CA instead of self-signing. */
  ca?: CertificateAndKey
  /** Start of validity. Default one hour ago. */
  notBefore?: Date
  /** End of validity. Default one year from now. */
  notAfter?: Date
}

const CERTIFICATE_KEYS = optionKeys<CertificateOptions>({
  commonName: true,
  subjectAltNames: true,
  isCa: true,
  ca: true,
  notBefore: true,
  notAfter: true,
})

function seconds(name: string, d: Date | undefined): number | undefined {
  if (d === undefined) return undefined
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `${name} must be a valid Date`)
  }
  return Math.floor(d.getTime() / 1000)
}

/** Generates a certificate: self-signed, or signed by `options.ca`. */
export function generateCertificate(options: CertificateOptions = {}): CertificateAndKey {
  checkOptions('generateCertificate()', options, CERTIFICATE_KEYS)
  try {
    return native.generateCertificateNative({
      commonName: options.commonName,
      subjectAltNames: options.subjectAltNames,
      isCa: options.isCa,
      caCert: options.ca?.cert,
      caKey: options.ca?.key,
      notBefore: seconds('notBefore', options.notBefore),
      notAfter: seconds('notAfter', options.notAfter),
    })
  } catch (err) {
    throw fromNative(err)
  }
}

// ---------------------------------------------------------------------------------------------
// MockAgent: answers the client's requests from interceptors, without the network
// ---------------------------------------------------------------------------------------------

/** Matches a string: equal to it, a RegExp that tests it, or a function that returns true. */
export type Matcher = string | RegExp | ((value: string) => boolean)

/** What an interceptor matches. Fields left out match anything. */
export interface InterceptOptions {
  /** `https://api.example.com` (scheme, host and port, as `URL.origin` writes it). */
  origin: string
  /** Path and query, e.g. `/users?page=2`. */
  path: Matcher
  /** Default `GET`. */
  method?: string
  /** Header values to match, by name (case-insensitive). */
  headers?: Record<string, Matcher>
  /** The request body as UTF-8 text. */
  body?: Matcher
}

/** Options of a mocked reply. */
export interface ReplyOptions {
  /** Response headers (a JSON body gets `content-type: application/json` unless given here). */
  headers?: Record<string, string>
}

/** A mocked request, as a reply function gets it. */
export interface MockRequest {
  /** The full request URL. */
  url: string
  /** The request method, upper case. */
  method: string
  /** The request headers. */
  headers: Headers
  /** The request body as UTF-8 text (empty when there is none). */
  body: string
}

type ReplyBody = string | Uint8Array | object | null | undefined
type Reply =
  | { kind: 'reply'; status: number; body: (req: MockRequest) => ReplyBody; headers: Record<string, string> }
  | { kind: 'error'; code: string; message: string }

/** One intercepted request shape and what it answers; returned by {@link MockAgent.intercept}. */
export class MockInterceptor {
  /** @internal */
  readonly options: InterceptOptions
  /** @internal */
  reply_: Reply | undefined
  /** @internal Uses left; Infinity with `persist()`. */
  left = 1
  /** @internal */
  delayMs = 0
  /** @internal Answered at least once. */
  used = false

  /** @internal */
  constructor(options: InterceptOptions) {
    this.options = options
  }

  /**
   * Answers with `status` and `body` (a string or bytes as they are, another object as JSON with
   * `content-type: application/json`, or a function of the request that returns one of those).
   */
  reply(status: number, body?: ReplyBody | ((req: MockRequest) => ReplyBody), options: ReplyOptions = {}): this {
    if (!Number.isInteger(status) || status < 100 || status > 999) {
      throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `invalid status ${status}`)
    }
    checkOptions('reply()', options, REPLY_KEYS)
    this.reply_ = {
      kind: 'reply',
      status,
      body: typeof body === 'function' ? (body as (req: MockRequest) => ReplyBody) : () => body as ReplyBody,
      headers: options.headers ?? {},
    }
    return this
  }

  /** Fails the request as the network would: `ECONNREFUSED` unless another code is given. */
  replyWithError(code = 'ECONNREFUSED', message = `mocked ${code}`): this {
    this.reply_ = { kind: 'error', code, message }
    return this
  }

  /** Waits this long before answering (an `AbortSignal` still cuts it short). */
  delay(ms: number): this {
    if (!Number.isFinite(ms) || ms < 0) throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'delay must be >= 0 ms')
    this.delayMs = ms
    return this
  }

  /** Answers `n` matching requests (default 1). */
  times(n: number): this {
    if (!Number.isInteger(n) || n < 1) throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'times must be >= 1')
    this.left = n
    return this
  }

  /** Answers every matching request, never used up. */
  persist(): this {
    this.left = Number.POSITIVE_INFINITY
    return this
  }
}

const INTERCEPT_KEYS = optionKeys<InterceptOptions>({
  origin: true,
  path: true,
  method: true,
  headers: true,
  body: true,
})
const REPLY_KEYS = optionKeys<ReplyOptions>({ headers: true })

function matches(m: Matcher, value: string): boolean {
  if (typeof m === 'string') return m === value
  if (m instanceof RegExp) return m.test(value)
  return m(value)
}

function describeRequest(r: MockedRequest): string {
  return `${r.method} ${r.url}`
}

/**
 * Answers the hypersock client's requests (`fetch`, every `Client`, `EventSource`) from
 * interceptors, as undici's `MockAgent` does, once `install()`ed. A request no interceptor matches
 * goes to the network, unless `disableNetConnect()` was called: then it fails with
 * `ERR_MOCK_NOT_MATCHED` (hosts given to `enableNetConnect` still pass).
 *
 * An `EventSource` asks the agent at each connection: a `200` reply with `content-type:
 * text/event-stream` is the stream (its body parsed as events); when the body ends, the source
 * reconnects after its retry delay, with `Last-Event-ID`, and that request uses up the next
 * matching interceptor (or the same one, with `times` or `persist`). Another status fails it for
 * good, `replyWithError` is a lost connection. A connection that goes to the network stays there,
 * its reconnections included.
 *
 * ```ts
 * const mock = new MockAgent().install()
 * mock.disableNetConnect()
 * mock.intercept({ origin: 'https://api.test', path: '/users' }).reply(200, [{ id: 1 }])
 * const users = await (await fetch('https://api.test/users')).json()
 * mock.assertNoPendingInterceptors()
 * mock.uninstall()
 * ```
 */
export class MockAgent {
  #interceptors: MockInterceptor[] = []
  #netConnect: boolean | Matcher[] = true

  /** Adds an interceptor; say what it answers with `reply` or `replyWithError`. */
  intercept(options: InterceptOptions): MockInterceptor {
    checkOptions('intercept()', options, INTERCEPT_KEYS)
    if (typeof options.origin !== 'string' || options.path === undefined) {
      throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'intercept() needs an origin and a path')
    }
    const interceptor = new MockInterceptor({ ...options, origin: new URL(options.origin).origin })
    this.#interceptors.push(interceptor)
    return interceptor
  }

  /** Makes every hypersock client consult this agent (one agent at a time). */
  install(): this {
    setMockDispatcher((request) => this.#dispatch(request))
    return this
  }

  /** Stops intercepting. */
  uninstall(): void {
    setMockDispatcher(undefined)
  }

  /** Unmatched requests fail with `ERR_MOCK_NOT_MATCHED` instead of reaching the network. */
  disableNetConnect(): void {
    this.#netConnect = false
  }

  /** Lets unmatched requests reach the network: all of them, or only to these hosts (`host:port` or `host`). */
  enableNetConnect(...hosts: Matcher[]): void {
    this.#netConnect =
      hosts.length === 0 ? true : [...(Array.isArray(this.#netConnect) ? this.#netConnect : []), ...hosts]
  }

  /** Interceptors not used up (a `persist()`ed one is pending until used once). */
  pendingInterceptors(): InterceptOptions[] {
    return this.#interceptors
      .filter((i) => (i.left === Number.POSITIVE_INFINITY ? !i.used : i.left > 0))
      .map((i) => i.options)
  }

  /** Throws, listing them, when some interceptors were never (or not enough times) used. */
  assertNoPendingInterceptors(): void {
    const pending = this.pendingInterceptors()
    if (pending.length > 0) {
      const list = pending.map((o) => `${o.method ?? 'GET'} ${o.origin}${String(o.path)}`).join(', ')
      throw new InvalidArgumentError('ERR_MOCK_PENDING', `${pending.length} interceptor(s) not used: ${list}`)
    }
  }

  async #dispatch(request: MockedRequest): Promise<Binding.BindingResponse | undefined> {
    const url = new URL(request.url)
    const path = url.pathname + url.search
    const headers = headersFromFlat(request.headers)
    const text = request.body ? Buffer.from(request.body).toString('utf8') : ''
    const found = this.#interceptors.find((i) => {
      const o = i.options
      if (i.left <= 0 || o.origin !== url.origin || !matches(o.path, path)) return false
      if ((o.method ?? 'GET').toUpperCase() !== request.method) return false
      for (const [name, m] of Object.entries(o.headers ?? {})) {
        const value = headers.get(name)
        if (value === null || !matches(m, value)) return false
      }
      return o.body === undefined || matches(o.body, text)
    })
    if (!found) {
      const host = url.host
      const allowed =
        this.#netConnect === true ||
        (Array.isArray(this.#netConnect) && this.#netConnect.some((m) => matches(m, host) || matches(m, url.hostname)))
      if (allowed) return undefined
      throw makeError(
        'ERR_MOCK_NOT_MATCHED',
        `no interceptor matches ${describeRequest(request)} and net connect is disabled`,
      )
    }
    if (found.reply_ === undefined) {
      throw new InvalidArgumentError(
        'ERR_INVALID_STATE',
        `the interceptor for ${describeRequest(request)} has no reply`,
      )
    }
    found.left--
    found.used = true
    if (found.delayMs > 0) await sleep(found.delayMs, request.signal)
    if (request.signal?.aborted) throw new AbortError(undefined, { cause: request.signal.reason })
    const reply = found.reply_
    if (reply.kind === 'error') throw makeError(reply.code, reply.message)
    const value = reply.body({ url: request.url, method: request.method, headers, body: text })
    const flat: string[] = []
    for (const [name, v] of Object.entries(reply.headers)) flat.push(name.toLowerCase(), String(v))
    let body: Buffer
    if (value === null || value === undefined) body = Buffer.alloc(0)
    else if (typeof value === 'string') body = Buffer.from(value)
    else if (value instanceof Uint8Array) body = Buffer.from(value)
    else {
      body = Buffer.from(JSON.stringify(value))
      if (!flat.includes('content-type')) flat.push('content-type', 'application/json')
    }
    if (!flat.includes('content-length')) flat.push('content-length', String(body.byteLength))
    return {
      status: reply.status,
      statusText: STATUS_CODES[reply.status] ?? '',
      headers: flat,
      body,
      url: request.url,
      version: 'HTTP/1.1',
      redirects: [],
      attempts: 1,
      connectionId: 0,
    }
  }
}

function sleep(ms: number, signal: AbortSignal | null | undefined): Promise<void> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      signal?.removeEventListener('abort', onAbort)
      resolve()
    }, ms)
    const onAbort = () => {
      clearTimeout(timer)
      reject(new AbortError(undefined, { cause: signal?.reason }))
    }
    signal?.addEventListener('abort', onAbort, { once: true })
  })
}

// ---------------------------------------------------------------------------------------------
// webSocketPair: a handler under test and a client connected to it
// ---------------------------------------------------------------------------------------------

/** What {@link webSocketPair} gives: the open client, the server, and a way to end both. */
export interface WebSocketPair<Data> {
  /** A WHATWG `WebSocket`, open, connected to `server`. */
  client: WebSocket
  /** The server running the handler under test (`server.hub`, `server.websocketCount`, ...). */
  server: Server<Data>
  /** Closes the client and stops the server at once. */
  close(): Promise<void>
}

/**
 * Runs `handler` (the `websocket` of `serve`, or `serveWebSocket`'s options) on a loopback port
 * and connects a client to it: a real connection, framing and limits included, in one call.
 *
 * ```ts
 * const { client, close } = await webSocketPair({ message: (ws, data) => ws.send(data) })
 * client.send('hi')
 * ```
 */
export async function webSocketPair<Data = unknown>(
  handler: WebSocketServeOptions<Data>,
  clientOptions: WebSocketOptions = {},
): Promise<WebSocketPair<Data>> {
  const server = await serveWebSocket<Data>({ hostname: '127.0.0.1', ...handler })
  const client = new WebSocket(`ws://127.0.0.1:${server.port}/`, [], clientOptions)
  try {
    await new Promise<void>((resolve, reject) => {
      client.addEventListener('open', () => resolve(), { once: true })
      client.addEventListener(
        'close',
        (e) => reject(new Error(`the handler refused the connection (close ${(e as CloseEvent).code})`)),
        { once: true },
      )
    })
  } catch (error) {
    await server.stop({ graceful: false })
    throw error
  }
  return {
    client,
    server,
    async close() {
      client.terminate()
      await server.stop({ graceful: false })
    },
  }
}

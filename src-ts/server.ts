import { fromNative, HypersockError, InvalidArgumentError } from './errors.js'
import { Hub } from './hub.js'
import { type Binding, native } from './native.js'
import { ServerRequest } from './server-request.js'
import { type ReplyHandle, type ResponseLike, respondText, sendResponse } from './server-response.js'
import { RouteHandlers, type Routes } from './server-routes.js'
import { bindingWsOptions, HANDLER_KEYS, type WebSocketHandler } from './server-websocket.js'
import { WebSocketDispatcher } from './server-websocket-dispatcher.js'
import { checkTlsOptions, SERVER_TLS_FIELDS, SNI_FIELDS } from './tls.js'
import { checkInteger, checkOptions, optionKeys, U32 } from './validate.js'
import { decodeRequests } from './wire/request.js'

export type { ResponseLike }
export { ServerRequest }

/**
 * One line of the access log, given to `accessLog` after each response head is sent: for
 * requests handled in JS, and for those the route table answers in Rust (static values, files,
 * 405).
 */
export interface AccessLogEntry {
  /** The request method. */
  method: string
  /** The request URL (absolute, as `request.url`). */
  url: string
  /** The response status. */
  status: number
  /** The request's HTTP version: `1.0`, `1.1` or `2`. */
  httpVersion: string
  /** The client's IP address. */
  remoteAddress: string
  /** Time from the request reaching JS to the response head being handed back, in ms. */
  durationMs: number
}

/** Options of {@link serve}. Times are in milliseconds (0 turns a timeout off), sizes in bytes. */
export interface ServeOptions<Data = unknown> {
  /** Port to listen on; 0 (the default) picks a free one, see `server.port`. */
  port?: number
  /** Interface to listen on. Default `127.0.0.1`; `::1` for IPv6 loopback, `0.0.0.0` or `::` for all. */
  hostname?: string
  /** Listen on this unix socket path instead of TCP. */
  unix?: string
  /** Set `SO_REUSEPORT` so several processes can listen on the same port. Default false. */
  reusePort?: boolean
  /**
   * HTTP/2: `true` (default) serves it beside HTTP/1.1 (h2c by prior knowledge on plain TCP),
   * `false` serves HTTP/1.1 only, `'only'` serves HTTP/2 only.
   */
  http2?: boolean | 'only'
  /**
   * Routes matched by the engine before `fetch`: `'/users/:id'`, `'/assets/*'`, per-method
   * objects `{ GET, POST }`. A `Response`, string or bytes is answered by the engine without
   * calling into JS; so are {@link file} and {@link dir}.
   */
  routes?: Routes<Server<Data>>
  /** Handles every HTTP request no route takes. Without it, those get 404. */
  fetch?(request: ServerRequest, server: Server<Data>): ResponseLike | Promise<ResponseLike>
  /** Enables WebSocket upgrades on the same port. */
  websocket?: WebSocketHandler<Data>
  /** Called when a handler throws; its return value, if any, is sent instead of the error status. */
  // biome-ignore lint/suspicious/noConfusingVoidType: a hook that only logs returns nothing
  error?(error: unknown, request: ServerRequest | null): ResponseLike | undefined | void
  /** Called after each response head is sent, also for requests the route table answers in Rust. */
  accessLog?(entry: AccessLogEntry): void
  /** Largest request body accepted; bigger ones get 413 (chunked ones too). Default 16 MiB. */
  maxBodySize?: number
  /** Time a client has to send a request head, counted from when the connection is ready for one. Default 30 000. */
  headerReadTimeout?: number
  /** Close a connection after this long without traffic and no request in flight. Default 60 000. */
  idleTimeout?: number
  /** Time allowed to receive a whole request body (408 after). Default 300 000. */
  requestTimeout?: number
  /**
   * Close a connection whose client takes no response bytes for this long while a response
   * waits to be sent (a client that stopped reading); counted in `stats().timeouts`. Default 60 000.
   */
  sendTimeout?: number
  /** Largest request head (431 beyond; at least 8 KiB). Default 64 KiB. */
  maxHeaderSize?: number
  /** Most header fields in a request (431 beyond). Default 100. */
  maxHeaders?: number
  /**
   * Most streams open at once on one HTTP/2 connection, requests and WebSockets over HTTP/2
   * together; further ones wait until one ends. Default 256. Raise it for clients that open many
   * WebSockets on one connection.
   */
  maxConcurrentStreams?: number
  /** Most connections open at once; further clients wait in the kernel backlog. Default unlimited. */
  maxConnections?: number
  /** Most requests in handlers at once; further ones queue. Default unlimited. */
  maxConcurrentRequests?: number
  /** Most requests waiting for a handler slot; further ones get 503. Default 1024. */
  maxQueuedRequests?: number
  /** Value of the `Server` response header. Default none. */
  serverName?: string
  /** Serve HTTPS (HTTP/2 by ALPN) with these certificates. */
  tls?: ServerTlsOptions
}

/** TLS settings of an HTTPS server. PEM text or Buffers. */
export interface ServerTlsOptions {
  /** Certificate chain, leaf first (the default certificate). */
  cert: string | Buffer
  /** Private key of `cert`. */
  key: string | Buffer
  /** More certificates, chosen by the SNI name the client asks for (`*.example.com` allowed). */
  sni?: Array<{ serverName: string | string[]; cert: string | Buffer; key: string | Buffer }>
  /** CA certificates that client certificates must chain to; asks clients for a certificate. */
  clientCa?: string | Buffer | Array<string | Buffer>
  /** With `clientCa`: refuse clients without a valid certificate. Default false. */
  requireClientCert?: boolean
  /** Lowest TLS version. Default `'TLSv1.2'`. */
  minVersion?: 'TLSv1.2' | 'TLSv1.3'
}

/** Options of {@link Server.stop}. */
export interface StopOptions {
  /** Let in-flight requests finish and close WebSockets with 1001 first. Default true. */
  graceful?: boolean
  /** Deadline for a graceful stop, after which the rest is cut. Default 10 000. */
  timeout?: number
}

const SERVE_KEYS = optionKeys<ServeOptions>({
  port: true,
  hostname: true,
  unix: true,
  reusePort: true,
  http2: true,
  routes: true,
  fetch: true,
  websocket: true,
  error: true,
  accessLog: true,
  maxBodySize: true,
  headerReadTimeout: true,
  idleTimeout: true,
  requestTimeout: true,
  sendTimeout: true,
  maxHeaderSize: true,
  maxHeaders: true,
  maxConcurrentStreams: true,
  maxConnections: true,
  maxConcurrentRequests: true,
  maxQueuedRequests: true,
  serverName: true,
  tls: true,
})
const STOP_KEYS = optionKeys<StopOptions>({ graceful: true, timeout: true })

/** What {@link Server.reload} swaps. */
export interface ReloadOptions<Data = unknown> {
  /** The new route table (replaces the whole table; `{}` removes every route). */
  routes?: Routes<Server<Data>>
  /** The new fallback handler. */
  fetch?: ServeOptions<Data>['fetch']
}

const RELOAD_KEYS = optionKeys<ReloadOptions>({ routes: true, fetch: true })

function notFound(): ResponseLike {
  return { status: 404, headers: { 'content-type': 'text/plain;charset=utf-8' }, body: 'not found\n' }
}

/** Counters of a running server. */
export interface ServerStats {
  /** Connections open now (HTTP and upgraded). */
  connectionsOpen: number
  /** Connections accepted since the start. */
  connectionsTotal: number
  /** Requests received since the start. */
  requestsTotal: number
  /** Requests being handled now. */
  requestsInFlight: number
  /** Bytes read from clients. */
  bytesIn: number
  /** Bytes written to clients. */
  bytesOut: number
  /** WebSocket connections open now. */
  webSocketsOpen: number
  /** WebSocket connections accepted since the start. */
  webSocketsTotal: number
  /** Of `webSocketsTotal`, the WebSockets opened as streams of an HTTP/2 connection (RFC 8441). */
  webSocketsH2Total: number
  /** Responses by status class. */
  responses: { '1xx': number; '2xx': number; '3xx': number; '4xx': number; '5xx': number }
  /** Requests answered 503 because the handler queue was full. */
  rejectedOverload: number
  /** Connections or requests cut by a timeout. */
  timeouts: number
  /** TLS handshakes that failed or timed out. */
  tlsFailures: number
}

function pem(name: string, value: unknown): string {
  if (typeof value === 'string') return value
  if (Buffer.isBuffer(value)) return value.toString('utf8')
  throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `tls.${name} must be PEM text or a Buffer`)
}

function bindingTls(tls: ServerTlsOptions): Binding.BindingServerTls {
  if (tls === null || typeof tls !== 'object') {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'tls must be an object with cert and key')
  }
  checkTlsOptions('tls', tls, SERVER_TLS_FIELDS)
  const certificates = [{ serverNames: [] as string[], cert: pem('cert', tls.cert), key: pem('key', tls.key) }]
  for (const [i, entry] of (tls.sni ?? []).entries()) {
    checkTlsOptions(`tls.sni[${i}]`, entry, SNI_FIELDS)
    if (
      typeof entry.serverName !== 'string' &&
      !(Array.isArray(entry.serverName) && entry.serverName.every((n) => typeof n === 'string'))
    ) {
      throw new InvalidArgumentError(
        'ERR_INVALID_ARG_VALUE',
        `tls.sni[${i}].serverName must be a string or an array of strings`,
      )
    }
    const names = Array.isArray(entry.serverName) ? entry.serverName : [entry.serverName]
    certificates.push({
      serverNames: names.map(String),
      cert: pem('sni.cert', entry.cert),
      key: pem('sni.key', entry.key),
    })
  }
  const ca = tls.clientCa === undefined ? [] : Array.isArray(tls.clientCa) ? tls.clientCa : [tls.clientCa]
  return {
    certificates,
    clientCa: ca.map((c) => pem('clientCa', c)),
    requireClientCert: tls.requireClientCert ?? false,
    minVersion: tls.minVersion,
  }
}

function protocolsOf(http2: boolean | 'only' | undefined): number {
  if (http2 !== undefined && http2 !== true && http2 !== false && http2 !== 'only') {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `http2 must be true, false or 'only', not ${String(http2)}`)
  }
  return http2 === 'only' ? 2 : http2 === false ? 0 : 1
}

/** The status for an error thrown by a handler: body over the limit, body too slow, or 500. */
function statusFor(error: unknown): [number, string] {
  if (error instanceof HypersockError) {
    if (error.code === 'ERR_BODY_TOO_LARGE') return [413, 'request body too large\n']
    if (error.code === 'ETIMEDOUT') return [408, 'request body not received in time\n']
    if (error.code === 'ECONNRESET') return [400, 'could not read the request body\n']
  }
  return [500, 'internal server error\n']
}

/** A running server made by {@link serve}. */
export class Server<Data = unknown> {
  #native: Binding.BindingServer
  #options: ServeOptions<Data>
  #keepAlive: ReturnType<typeof setInterval> | undefined
  #stopping: Promise<void> | undefined
  #ws: WebSocketDispatcher<Data> | undefined
  #hub: Hub<Data>
  #host: string
  #scheme: string
  #reply: ReplyHandle
  #routes: RouteHandlers<Server<Data>>
  #fetch: NonNullable<ServeOptions<Data>['fetch']>
  #reloading: Promise<void> = Promise.resolve()

  /** @internal */
  constructor(raw: Binding.BindingServer, options: ServeOptions<Data>, routes: RouteHandlers<Server<Data>>) {
    this.#native = raw
    this.#options = options
    this.#routes = routes
    this.#fetch = options.fetch ?? notFound
    this.#host = raw.isUnix
      ? 'localhost'
      : raw.address.includes(':')
        ? `[${raw.address}]:${raw.port}`
        : `${raw.address}:${raw.port}`
    this.#scheme = options.tls ? 'https' : 'http'
    this.#reply = raw.replyHandle()
    if (options.websocket) this.#ws = new WebSocketDispatcher(options.websocket, (e) => this.#fail(e, null))
    this.#hub = options.websocket?.hub ?? new Hub<Data>()
    this.#hub.attach(raw.hub(), (id) => this.#ws?.get(id))
    // The addon's callbacks do not hold the event loop open; this timer does, until stop().
    this.#keepAlive = setInterval(() => {}, 1 << 30)
  }

  /** The port the server listens on (0 on a unix socket). */
  get port(): number {
    return this.#native.port
  }

  /** The address the server listens on, or the unix socket path. */
  get hostname(): string {
    return this.#native.address
  }

  /** The unix socket path, when listening on one. */
  get unix(): string | undefined {
    return this.#native.isUnix ? this.#native.address : undefined
  }

  /** The base URL of the server, e.g. `http://127.0.0.1:8080/`. */
  get url(): URL {
    return new URL(`${this.#options.tls ? 'https' : 'http'}://${this.#host}/`)
  }

  /** The {@link Hub} of this server's WebSocket connections: rooms, publish and broadcast. */
  get hub(): Hub<Data> {
    return this.#hub
  }

  /** Open WebSocket connections. */
  get webSocketCount(): number {
    return this.#ws?.count ?? 0
  }

  /**
   * Swaps in new certificates without a restart: new connections use them, open ones keep
   * theirs. Throws `ERR_INVALID_ARG_VALUE` when the server has no TLS or a certificate is bad.
   */
  reloadTls(tls: ServerTlsOptions): void {
    try {
      this.#native.reloadTls(bindingTls(tls), protocolsOf(this.#options.http2))
    } catch (err) {
      throw fromNative(err)
    }
  }

  /**
   * Swaps the routes and/or the `fetch` handler without dropping a connection: requests already
   * matched finish with the handler of their route, later ones use the new table.
   */
  reload(options: ReloadOptions<Data>): Promise<void> {
    // Reloads take effect in the order they were called, however long each takes to read its
    // static responses.
    const run = this.#reloading.then(() => this.#reload(options))
    this.#reloading = run.catch(() => {})
    return run
  }

  async #reload(options: ReloadOptions<Data>): Promise<void> {
    checkOptions('server.reload()', options, RELOAD_KEYS)
    if (options.fetch !== undefined && typeof options.fetch !== 'function') {
      throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'reload(): fetch must be a function')
    }
    if (options.routes !== undefined) {
      const { table, commit } = await this.#routes.compile(options.routes)
      try {
        this.#native.setRoutes(table)
      } catch (err) {
        throw fromNative(err)
      }
      commit()
    }
    if (options.fetch) this.#fetch = options.fetch
  }

  /** The server's counters. */
  stats(): ServerStats {
    const s = this.#native.stats()
    const [a = 0, b = 0, c = 0, d = 0, e = 0] = s.responses
    return {
      connectionsOpen: s.connectionsOpen,
      connectionsTotal: s.connectionsTotal,
      requestsTotal: s.requestsTotal,
      requestsInFlight: s.requestsInFlight,
      bytesIn: s.bytesIn,
      bytesOut: s.bytesOut,
      webSocketsOpen: s.websocketsOpen,
      webSocketsTotal: s.websocketsTotal,
      webSocketsH2Total: s.websocketsH2Total,
      responses: { '1xx': a, '2xx': b, '3xx': c, '4xx': d, '5xx': e },
      rejectedOverload: s.rejectedOverload,
      timeouts: s.timeouts,
      tlsFailures: s.tlsFailures,
    }
  }

  /** The counters in the Prometheus text exposition format. */
  metrics(prefix = 'hypersock'): string {
    if (!/^[a-zA-Z_:][a-zA-Z0-9_:]*$/.test(prefix)) {
      throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `invalid metric prefix ${JSON.stringify(prefix)}`)
    }
    return this.#native.metrics(prefix)
  }

  /** Lets the process exit while the server is still running. */
  unref(): this {
    this.#keepAlive?.unref()
    return this
  }

  /** Keeps the process alive while the server runs (the default). */
  ref(): this {
    this.#keepAlive?.ref()
    return this
  }

  /**
   * Stops the server: stops accepting, lets in-flight requests finish, closes idle keep-alive
   * connections and sends close 1001 to WebSockets, then cuts what remains at the deadline.
   */
  stop(options: StopOptions = {}): Promise<void> {
    checkOptions('server.stop()', options, STOP_KEYS)
    this.#stopping ??= (async () => {
      const graceful = options.graceful ?? true
      const timeout = graceful ? Math.max(0, Math.min(options.timeout ?? 10_000, 0xffffffff)) : 0
      await this.#native.stop(timeout)
      this.#hub.detach()
      clearInterval(this.#keepAlive)
      this.#keepAlive = undefined
    })()
    return this.#stopping
  }

  /** Stops the server gracefully, as `stop()`: for `await using server = await serve(...)`. */
  async [Symbol.asyncDispose](): Promise<void> {
    await this.stop()
  }

  #fail(error: unknown, request: ServerRequest | null): ResponseLike | undefined {
    const hook = this.#options.error
    if (hook) {
      try {
        return hook(error, request) ?? undefined
      } catch (again) {
        console.error('hypersock: the error handler threw', again)
        return undefined
      }
    }
    if (statusFor(error)[0] === 500) console.error('hypersock: handler error', error)
    return undefined
  }

  #respondError(request: ServerRequest, error: unknown): void {
    const custom = this.#fail(error, request)
    const [status, text] = statusFor(error)
    const plain = () => respondText(request, status, text)
    if (custom !== undefined) {
      try {
        const done = sendResponse(request, custom)
        if (done) done.catch(plain)
        return
      } catch {
        // fall through to the plain error response
      }
    }
    plain()
  }

  /** @internal A request the route table answered: `url` comes as the target, made absolute here. */
  logAnswered(entry: AccessLogEntry): void {
    const log = this.#options.accessLog
    if (!log) return
    try {
      log({ ...entry, url: new URL(entry.url, this.url).href })
    } catch (error) {
      this.#fail(error, null)
    }
  }

  #log(request: ServerRequest, started: number, status: number): void {
    const log = this.#options.accessLog
    if (!log) return
    try {
      log({
        method: request.method,
        url: request.url,
        status,
        httpVersion: request.httpVersion,
        remoteAddress: request.remoteAddress,
        durationMs: performance.now() - started,
      })
    } catch (error) {
      this.#fail(error, request)
    }
  }

  #send(request: ServerRequest, out: ResponseLike, started: number): void {
    let done: void | Promise<void>
    try {
      done = sendResponse(request, out)
    } catch (error) {
      this.#respondError(request, error)
      return
    }
    if (done) done.catch((error: unknown) => this.#respondError(request, error))
    if (this.#options.accessLog) this.#log(request, started, statusOf(out))
  }

  /** @internal Handles every request waiting in the addon, in order. */
  drainRequests(): void {
    const batch = this.#native.takeRequests()
    if (batch)
      decodeRequests(batch, (at) =>
        this.#onRequest(new ServerRequest(batch, at, this.#native, this.#reply, this.#host, this.#scheme)),
      )
  }

  #onRequest = (request: ServerRequest): void => {
    const started = this.#options.accessLog ? performance.now() : 0
    let handler = this.#fetch
    const route = request.routeId
    if (route >= 0) {
      const found = this.#routes.get(route)
      if (found) {
        handler = found[0]
        request.route = found[1]
      }
    }
    let out: ResponseLike | Promise<ResponseLike>
    try {
      out = handler(request, this)
    } catch (error) {
      this.#respondError(request, error)
      return
    }
    if (out instanceof Promise) {
      out.then(
        (value) => this.#send(request, value, started),
        (error: unknown) => this.#respondError(request, error),
      )
      return
    }
    this.#send(request, out, started)
  }

  /** @internal Handles every WebSocket event waiting in the addon, in order. */
  drainWebSocketEvents(): void {
    const batch = this.#native.takeWsEvents()
    if (batch) this.#ws?.drain(batch)
  }
}

function statusOf(out: ResponseLike): number {
  if (typeof out === 'string' || out instanceof Uint8Array) return 200
  if (out instanceof globalThis.Response) return out.status
  return out.upgrade ? 101 : (out.status ?? 200)
}

/**
 * Starts an HTTP/1.1 + HTTP/2 server (with WebSocket on the same port when `websocket` is given).
 *
 * ```ts
 * const server = await serve({ port: 8080, fetch: (req) => new Response('ok') })
 * ```
 */
export async function serve<Data = unknown>(options: ServeOptions<Data>): Promise<Server<Data>> {
  if (options === null || typeof options !== 'object') {
    throw new InvalidArgumentError(
      'ERR_INVALID_ARG_VALUE',
      'serve() needs options with routes or a fetch(request) handler',
    )
  }
  checkOptions('serve()', options, SERVE_KEYS)
  if (options.fetch !== undefined && typeof options.fetch !== 'function') {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'serve(): fetch must be a function')
  }
  if (options.fetch === undefined && options.routes === undefined && options.websocket === undefined) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'serve() needs routes or a fetch(request) handler')
  }
  const routes = new RouteHandlers<Server<Data>>()
  const compiled = options.routes === undefined ? undefined : await routes.compile(options.routes)
  const port = options.port ?? 0
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `invalid port ${port}`)
  }
  if (options.websocket?.hub?.attached) {
    throw new InvalidArgumentError('ERR_INVALID_STATE', 'this Hub already belongs to a server')
  }
  let server: Server<Data> | undefined
  // Events that could arrive before `server` is assigned are queued and replayed in order.
  const early: Array<() => void> = []
  const onRequest = () => {
    if (server) server.drainRequests()
    else early.push(() => server?.drainRequests())
  }
  const onWebSocket = options.websocket
    ? () => {
        if (server) server.drainWebSocketEvents()
        else early.push(() => server?.drainWebSocketEvents())
      }
    : undefined
  let raw: Binding.BindingServer
  try {
    raw = await native.startServer(
      {
        hostname: options.hostname,
        port,
        unix: options.unix,
        reusePort: options.reusePort,
        protocols: protocolsOf(options.http2),
        tls: options.tls ? bindingTls(options.tls) : undefined,
        maxBodySize: checkInteger('maxBodySize', options.maxBodySize),
        headerReadTimeoutMs: checkInteger('headerReadTimeout', options.headerReadTimeout, U32),
        idleTimeoutMs: checkInteger('idleTimeout', options.idleTimeout, U32),
        requestTimeoutMs: checkInteger('requestTimeout', options.requestTimeout, U32),
        sendTimeoutMs: checkInteger('sendTimeout', options.sendTimeout, U32),
        maxHeaderSize: checkInteger('maxHeaderSize', options.maxHeaderSize, U32),
        maxHeaders: checkInteger('maxHeaders', options.maxHeaders, U32),
        maxConcurrentStreams: checkInteger('maxConcurrentStreams', options.maxConcurrentStreams, U32),
        maxConnections: checkInteger('maxConnections', options.maxConnections, U32),
        maxConcurrentRequests: checkInteger('maxConcurrentRequests', options.maxConcurrentRequests, U32),
        maxQueuedRequests: checkInteger('maxQueuedRequests', options.maxQueuedRequests, U32),
        serverName: options.serverName,
        websocket: options.websocket ? bindingWsOptions(options.websocket as WebSocketHandler<never>) : undefined,
        hub: options.websocket?.hub?.bindingOptions(),
        routes: compiled?.table,
      },
      onRequest,
      onWebSocket,
      // Requests the route table answers in Rust reach the access log too.
      options.accessLog
        ? (method, target, status, httpVersion, remoteAddress, durationMs) =>
            server?.logAnswered({ method, url: target, status, httpVersion, remoteAddress, durationMs })
        : undefined,
    )
  } catch (err) {
    throw fromNative(err)
  }
  compiled?.commit()
  server = new Server(raw, options, routes)
  for (const replay of early) replay()
  return server
}

/** Options of {@link serveWebSocket}: where to listen plus every WebSocket handler and limit. */
export interface WebSocketServeOptions<Data = unknown> extends WebSocketHandler<Data> {
  /** Port to listen on; 0 (the default) picks a free one, see `server.port`. */
  port?: number
  /** Interface to listen on. Default `127.0.0.1`; `::1` for IPv6, `0.0.0.0` for all. */
  hostname?: string
  /** Time a client has to send the upgrade request head. Default 30 000 ms. */
  headerReadTimeout?: number
  /** Value of the `Server` response header. Default none. */
  serverName?: string
  /** Serve `wss://` with these certificates (as `serve`'s `tls`). */
  tls?: ServerTlsOptions
  /** Listen on this unix socket path instead of TCP. */
  unix?: string
  /** Set `SO_REUSEPORT` so several processes can listen on the same port. Default false. */
  reusePort?: boolean
  /** Most streams open at once on one HTTP/2 connection (as `serve`'s). Default 256. */
  maxConcurrentStreams?: number
}

const WEBSOCKET_SERVE_KEYS = optionKeys<WebSocketServeOptions>({
  maxConcurrentStreams: true,
  port: true,
  hostname: true,
  headerReadTimeout: true,
  serverName: true,
  tls: true,
  unix: true,
  reusePort: true,
  ...HANDLER_KEYS,
})

/**
 * Starts a WebSocket-only server: the same handlers and limits as `serve({ websocket })`, and
 * plain HTTP requests get `426 Upgrade Required`.
 *
 * ```ts
 * const server = await serveWebSocket({ port: 8080, message(ws, data) { ws.send(data) } })
 * ```
 */
export function serveWebSocket<Data = unknown>(options: WebSocketServeOptions<Data>): Promise<Server<Data>> {
  checkOptions('serveWebSocket()', options, WEBSOCKET_SERVE_KEYS)
  const { port, hostname, headerReadTimeout, serverName, tls, unix, reusePort, maxConcurrentStreams, ...websocket } =
    options
  return serve<Data>({
    maxConcurrentStreams,
    port,
    hostname,
    headerReadTimeout,
    serverName,
    tls,
    unix,
    reusePort,
    websocket,
    fetch: () => ({
      status: 426,
      headers: { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-version': '13' },
      body: 'this server only speaks WebSocket\n',
    }),
  })
}

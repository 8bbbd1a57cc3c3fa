import { type BodyInit, encodeBody, flattenHeaders, hasHeader, headersFromFlat } from './body.js'
import { fromNative, InvalidArgumentError } from './errors.js'
import { type Binding, native } from './native.js'
import { bindingWsOptions, WebSocketDispatcher, type WebSocketHandler } from './server-websocket.js'

/** What a `fetch` handler may return (or resolve to). */
export type ResponseLike =
  | globalThis.Response
  | string
  | Uint8Array
  | { status?: number; headers?: HeadersInit; body?: BodyInit }

/** Options of {@link serve}. Times are in milliseconds, sizes in bytes. */
export interface ServeOptions<Data = unknown> {
  /** Port to listen on; 0 (the default) picks a free one, see `server.port`. */
  port?: number
  /** Interface to listen on. Default `127.0.0.1`; use `::1` for IPv6 or `0.0.0.0` for all. */
  hostname?: string
  /** Handles every HTTP request. */
  fetch(request: ServerRequest, server: Server<Data>): ResponseLike | Promise<ResponseLike>
  /** Enables WebSocket upgrades on the same port. */
  websocket?: WebSocketHandler<Data>
  /** Called when a handler throws; its return value, if any, is sent instead of a plain 500. */
  error?(error: unknown, request: ServerRequest | null): ResponseLike | undefined | void
  /** Largest request body accepted; bigger ones get 413. Default 16 MiB. */
  maxBodySize?: number
  /** Time a client has to send the request head before the connection is closed. Default 30 000. */
  headerReadTimeout?: number
  /** Value of the `Server` response header. Default none. */
  serverName?: string
}

/** Options of {@link Server.stop}. */
export interface StopOptions {
  /** Let in-flight requests finish and close WebSockets with 1001 first. Default true. */
  graceful?: boolean
  /** Deadline for a graceful stop, after which the rest is cut. Default 10 000. */
  timeout?: number
}

/** A request received by the server, shaped like WHATWG `Request`. */
export class ServerRequest {
  #native: Binding.BindingRequest
  #host: string
  #url: string | undefined
  #headers: Headers | undefined
  #body: Buffer | null | undefined

  /** @internal */
  constructor(raw: Binding.BindingRequest, host: string) {
    this.#native = raw
    this.#host = host
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
      else
        this.#url = `http://${this.headers.get('host') ?? this.#host}${target.startsWith('/') ? target : `/${target}`}`
    }
    return this.#url
  }

  /** The path of the URL, e.g. `/chat`. */
  get path(): string {
    return new URL(this.url).pathname
  }

  /** The query string parsed. */
  get query(): URLSearchParams {
    return new URL(this.url).searchParams
  }

  /** Request headers; repeated fields are kept (`get` joins them, `getSetCookie` lists them). */
  get headers(): Headers {
    this.#headers ??= headersFromFlat(this.#native.headers)
    return this.#headers
  }

  /** The client's IP address. */
  get remoteAddress(): string {
    return this.#native.remoteAddress
  }

  /** The client's port. */
  get remotePort(): number {
    return this.#native.remotePort
  }

  #take(): Buffer {
    if (this.#body === undefined) this.#body = this.#native.takeBody()
    else throw new TypeError('the body has already been read')
    return this.#body ?? Buffer.alloc(0)
  }

  /** True once a body method has been called. */
  get bodyUsed(): boolean {
    return this.#body !== undefined
  }

  /** The body as bytes. */
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

  /** @internal */
  get native(): Binding.BindingRequest {
    return this.#native
  }
}

const TEXT = 'text/plain;charset=utf-8'
const OCTETS = 'application/octet-stream'

function asBuffer(data: Uint8Array): Buffer {
  return Buffer.isBuffer(data) ? data : Buffer.from(data.buffer, data.byteOffset, data.byteLength)
}

function checkStatus(status: number): number {
  if (!Number.isInteger(status) || status < 200 || status > 999) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `invalid response status ${status}`)
  }
  return status
}

async function sendWebResponse(raw: Binding.BindingRequest, res: globalThis.Response): Promise<void> {
  const body = res.body === null ? null : Buffer.from(await res.arrayBuffer())
  raw.respond(checkStatus(res.status), flattenHeaders(res.headers), body)
}

function send(raw: Binding.BindingRequest, out: ResponseLike): void | Promise<void> {
  if (typeof out === 'string') {
    raw.respond(200, ['content-type', TEXT], out)
  } else if (out instanceof Uint8Array) {
    raw.respond(200, ['content-type', OCTETS], asBuffer(out))
  } else if (out instanceof globalThis.Response) {
    return sendWebResponse(raw, out)
  } else if (out !== null && typeof out === 'object') {
    const headers = flattenHeaders(out.headers)
    const { data, type } = encodeBody(out.body)
    if (type && !hasHeader(headers, 'content-type')) headers.push('content-type', type)
    const body = data instanceof Uint8Array ? asBuffer(data) : data
    raw.respond(checkStatus(out.status ?? 200), headers, body)
  } else {
    throw new TypeError(
      'the fetch handler returned nothing; return a Response, a string, bytes or { status, headers, body }',
    )
  }
}

/** A running server made by {@link serve}. */
export class Server<Data = unknown> {
  #native: Binding.BindingServer
  #options: ServeOptions<Data>
  #keepAlive: ReturnType<typeof setInterval> | undefined
  #stopping: Promise<void> | undefined
  #ws: WebSocketDispatcher<Data> | undefined
  #host: string

  /** @internal */
  constructor(raw: Binding.BindingServer, options: ServeOptions<Data>) {
    this.#native = raw
    this.#options = options
    this.#host = raw.address.includes(':') ? `[${raw.address}]:${raw.port}` : `${raw.address}:${raw.port}`
    if (options.websocket) this.#ws = new WebSocketDispatcher(options.websocket, (e) => this.#fail(e, null))
    // The addon's callbacks do not hold the event loop open; this timer does, until stop().
    this.#keepAlive = setInterval(() => {}, 1 << 30)
  }

  /** The port the server listens on. */
  get port(): number {
    return this.#native.port
  }

  /** The address the server listens on. */
  get hostname(): string {
    return this.#native.address
  }

  /** The base URL of the server, e.g. `http://127.0.0.1:8080/`. */
  get url(): URL {
    return new URL(`http://${this.#host}/`)
  }

  /** Open WebSocket connections. */
  get webSocketCount(): number {
    return this.#ws?.count ?? 0
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
    this.#stopping ??= (async () => {
      const graceful = options.graceful ?? true
      const timeout = graceful ? Math.max(0, Math.min(options.timeout ?? 10_000, 0xffffffff)) : 0
      await this.#native.stop(timeout)
      clearInterval(this.#keepAlive)
      this.#keepAlive = undefined
    })()
    return this.#stopping
  }

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
    console.error('hypersock: handler error', error)
    return undefined
  }

  #respondError(raw: Binding.BindingRequest, error: unknown, request: ServerRequest | null): void {
    const custom = this.#fail(error, request)
    if (custom !== undefined) {
      try {
        const done = send(raw, custom)
        if (done) done.catch(() => raw.respond(500, ['content-type', TEXT], 'internal server error\n'))
        return
      } catch {
        // fall through to the plain 500
      }
    }
    raw.respond(500, ['content-type', TEXT], 'internal server error\n')
  }

  /** @internal */
  onRequest = (raw: Binding.BindingRequest): void => {
    const request = new ServerRequest(raw, this.#host)
    let out: ResponseLike | Promise<ResponseLike>
    try {
      out = this.#options.fetch(request, this)
    } catch (error) {
      this.#respondError(raw, error, request)
      return
    }
    if (out instanceof Promise) {
      out.then((value) => send(raw, value)).catch((error: unknown) => this.#respondError(raw, error, request))
      return
    }
    try {
      const done = send(raw, out)
      if (done) done.catch((error: unknown) => this.#respondError(raw, error, request))
    } catch (error) {
      this.#respondError(raw, error, request)
    }
  }

  /** @internal */
  onWebSocket = (
    kind: number,
    id: number,
    socket: Binding.BindingWebSocket | null | undefined,
    data: string | Buffer | null | undefined,
    code: number,
  ): void => {
    this.#ws?.event(kind, id, socket, data, code)
  }
}

function checkSize(name: string, value: number | undefined, fallback: number): number {
  const v = value ?? fallback
  if (!Number.isSafeInteger(v) || v < 0) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `${name} must be a non-negative integer`)
  }
  return v
}

/**
 * Starts an HTTP/1.1 server (with WebSocket on the same port when `websocket` is given).
 *
 * ```ts
 * const server = await serve({ port: 8080, fetch: (req) => new Response('ok') })
 * ```
 */
export async function serve<Data = unknown>(options: ServeOptions<Data>): Promise<Server<Data>> {
  if (typeof options?.fetch !== 'function') {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'serve() needs a fetch(request) handler')
  }
  const port = options.port ?? 0
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `invalid port ${port}`)
  }
  let server: Server<Data> | undefined
  // Events that could arrive before `server` is assigned are queued and replayed in order.
  const early: Array<() => void> = []
  const onRequest = (raw: Binding.BindingRequest) => {
    if (server) server.onRequest(raw)
    else early.push(() => server?.onRequest(raw))
  }
  const onWebSocket = options.websocket
    ? (...args: Parameters<Server<Data>['onWebSocket']>) => {
        if (server) server.onWebSocket(...args)
        else early.push(() => server?.onWebSocket(...args))
      }
    : undefined
  let raw: Binding.BindingServer
  try {
    raw = await native.startServer(
      {
        hostname: options.hostname ?? '127.0.0.1',
        port,
        maxBodySize: checkSize('maxBodySize', options.maxBodySize, 16 * 1024 * 1024),
        headerReadTimeoutMs: checkSize('headerReadTimeout', options.headerReadTimeout, 30_000),
        serverName: options.serverName,
        websocket: options.websocket ? bindingWsOptions(options.websocket as WebSocketHandler<never>) : undefined,
      },
      onRequest,
      onWebSocket,
    )
  } catch (err) {
    throw fromNative(err)
  }
  server = new Server(raw, options)
  for (const replay of early) replay()
  return server
}

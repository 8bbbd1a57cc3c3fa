// Shared helpers of the end-to-end tests: raw sockets, free ports, waiting for events.
import { once } from 'node:events'
import http from 'node:http'
import net from 'node:net'
import type { CloseEvent, ErrorEvent, Hub, Server, ServerWebSocket, WebSocket } from 'hypersock'
import { afterEach } from 'vitest'

/** True once `text` holds a whole HTTP response (head plus a Content-Length body). */
function completeResponse(text: string): boolean {
  const end = text.indexOf('\r\n\r\n')
  if (end < 0) return false
  const length = /\r\ncontent-length: *(\d+)/i.exec(text.slice(0, end))
  return text.length - (end + 4) >= (length ? Number(length[1]) : 0)
}

/**
 * Sends raw bytes to 127.0.0.1:port and collects the reply until one whole response has come,
 * the server closes, or `idleMs` of silence.
 */
export async function rawExchange(port: number, data: string | Buffer, idleMs = 5000): Promise<string> {
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => chunks.push(c))
  socket.write(data)
  await new Promise<void>((resolve) => {
    let timer = setTimeout(() => socket.destroy(), idleMs)
    socket.on('data', () => {
      clearTimeout(timer)
      if (completeResponse(Buffer.concat(chunks).toString('latin1'))) socket.destroy()
      else timer = setTimeout(() => socket.destroy(), idleMs)
    })
    socket.on('close', () => {
      clearTimeout(timer)
      resolve()
    })
    socket.on('error', () => {})
  })
  return Buffer.concat(chunks).toString('latin1')
}

/** A port that nothing listens on (bound, read, released). */
export async function freePort(): Promise<number> {
  const srv = net.createServer()
  srv.listen(0, '127.0.0.1')
  await once(srv, 'listening')
  const port = (srv.address() as net.AddressInfo).port
  srv.close()
  await once(srv, 'close')
  return port
}

/** A promise with its resolve function, for events that tests wait on. */
export function deferred<T>(): { promise: Promise<T>; resolve: (value: T) => void; reject: (e: unknown) => void } {
  let resolve!: (value: T) => void
  let reject!: (e: unknown) => void
  const promise = new Promise<T>((res, rej) => {
    resolve = res
    reject = rej
  })
  return { promise, resolve, reject }
}

/** Collects `n` values pushed through `push`, resolving when all have come. */
export function collector<T>(n: number): { push: (v: T) => void; done: Promise<T[]> } {
  const items: T[] = []
  const d = deferred<T[]>()
  return {
    push(v: T) {
      items.push(v)
      if (items.length === n) d.resolve(items)
    },
    done: d.promise,
  }
}

/**
 * node:http peers for a test file: `serve(handler)` starts one on loopback and returns its base
 * URL; it, and anything pushed on `cleanups`, is closed after each test.
 */
export function nodeHttpPeers(): {
  serve: (handler: http.RequestListener) => Promise<string>
  cleanups: Array<() => void>
} {
  const cleanups: Array<() => void> = []
  afterEach(() => {
    for (const c of cleanups.splice(0)) c()
  })
  async function serve(handler: http.RequestListener): Promise<string> {
    const server = http.createServer(handler)
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    cleanups.push(() => {
      server.closeAllConnections()
      server.close()
    })
    return `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`
  }
  return { serve, cleanups }
}

/** What a {@link httpProxy} saw: CONNECT tunnels and forwarded (absolute-form) requests. */
export interface ProxyLog {
  connects: { target: string; auth: string | undefined }[]
  forwards: { url: string; auth: string | undefined }[]
}

/**
 * A small HTTP proxy on loopback: CONNECT tunnels and absolute-form forwarding, answering 407
 * when `credentials` (`user:pass`) are set and `Proxy-Authorization` does not match them. Its URL
 * carries the credentials. Closed (tunnels included) by the functions pushed on `cleanups`.
 */
export async function httpProxy(
  cleanups: Array<() => void>,
  credentials?: string,
): Promise<{ url: string; log: ProxyLog }> {
  const log: ProxyLog = { connects: [], forwards: [] }
  const expected = credentials ? `Basic ${Buffer.from(credentials).toString('base64')}` : undefined
  const tunnels = new Set<net.Socket>()
  const server = http.createServer()
  server.on('connect', (req: http.IncomingMessage, socket: net.Socket, head: Buffer) => {
    log.connects.push({ target: req.url ?? '', auth: req.headers['proxy-authorization'] })
    if (expected && req.headers['proxy-authorization'] !== expected) {
      socket.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n')
      return
    }
    const { hostname, port } = new URL(`http://${req.url ?? ''}`)
    const upstream = net.connect(Number(port), hostname.replace(/^\[|\]$/g, ''), () => {
      socket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
      upstream.write(head)
      upstream.pipe(socket)
      socket.pipe(upstream)
    })
    tunnels.add(socket).add(upstream)
    upstream.on('error', () => socket.destroy())
    socket.on('error', () => upstream.destroy())
  })
  server.on('request', (req: http.IncomingMessage, res: http.ServerResponse) => {
    log.forwards.push({ url: req.url ?? '', auth: req.headers['proxy-authorization'] })
    const headers = { ...req.headers }
    delete headers['proxy-authorization']
    const up = http.request(new URL(req.url ?? ''), { method: req.method, headers }, (r) => {
      res.writeHead(r.statusCode ?? 502, r.headers)
      r.pipe(res)
    })
    req.pipe(up)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  cleanups.push(() => {
    for (const s of tunnels) s.destroy()
    server.closeAllConnections()
    server.close()
  })
  const port = (server.address() as net.AddressInfo).port
  return { url: credentials ? `http://${credentials}@127.0.0.1:${port}` : `http://127.0.0.1:${port}`, log }
}

/**
 * Servers a test file starts, stopped (not gracefully) after each test. Call once at the top
 * level of the file; pass every server started to the function it returns.
 */
export function trackServers(): <S extends { stop(options: { graceful: boolean }): Promise<void> }>(server: S) => S {
  const servers: Array<{ stop(options: { graceful: boolean }): Promise<void> }> = []
  afterEach(async () => {
    await Promise.all(servers.splice(0).map((s) => s.stop({ graceful: false })))
  })
  return (server) => {
    servers.push(server)
    return server
  }
}

/** Joins `ws` to every room named in its URL's `?rooms=a,b` (the hub tests' servers do this on open). */
export function joinRoomsFromQuery(hub: Hub, ws: ServerWebSocket): void {
  const rooms = new URL(ws.url, 'http://x').searchParams.get('rooms')
  for (const room of rooms ? rooms.split(',') : []) hub.join(ws, room)
}

/** The error `fn` throws (or its promise rejects with), for assertions on `code` and class. */
export async function caught(fn: () => unknown): Promise<{ code?: string; message: string; name: string }> {
  try {
    await fn()
  } catch (error) {
    return error as { code?: string; message: string; name: string }
  }
  throw new Error('expected an error, none was thrown')
}

export interface RawResponse {
  status: number
  headers: Map<string, string>
  body: Buffer
}

/**
 * Sends `data` on one connection and parses `count` HTTP/1.1 responses off the wire, framed
 * strictly by their Content-Length (as a keep-alive client would), plus whatever bytes follow.
 */
export async function exchange(
  port: number,
  data: string,
  count: number,
  bodiless = false,
): Promise<{ responses: RawResponse[]; rest: Buffer }> {
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write(data)
  let buf = Buffer.alloc(0)
  const responses: RawResponse[] = []
  const parse = (): boolean => {
    for (;;) {
      if (responses.length === count) return true
      const end = buf.indexOf('\r\n\r\n')
      if (end < 0) return false
      const lines = buf.subarray(0, end).toString('latin1').split('\r\n')
      const status = Number(lines[0]?.split(' ')[1])
      const headers = new Map<string, string>()
      for (const line of lines.slice(1)) {
        const i = line.indexOf(':')
        headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim())
      }
      const length = bodiless ? 0 : Number(headers.get('content-length') ?? '0')
      if (buf.length < end + 4 + length) return false
      responses.push({ status, headers, body: buf.subarray(end + 4, end + 4 + length) })
      buf = buf.subarray(end + 4 + length)
    }
  }
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk])
    if (parse()) setTimeout(() => socket.destroy(), 100)
  })
  socket.on('error', () => {})
  await once(socket, 'close')
  parse()
  return { responses, rest: buf }
}

/** Sends a request with node:http and returns status, headers and the body chunks as they came. */
export function nodeRequest(
  url: URL | string,
  options: http.RequestOptions & { body?: Buffer | Buffer[] } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; chunks: Buffer[] }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, options, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, chunks }))
      res.on('error', reject)
    })
    req.on('error', reject)
    const body = options.body
    if (Array.isArray(body)) for (const part of body) req.write(part)
    else if (body) req.write(body)
    req.end()
  })
}

export function wsUrl(server: Server<unknown>, path = '/'): string {
  return `ws://127.0.0.1:${server.port}${path}`
}

export function nextMessage(ws: WebSocket): Promise<unknown> {
  return new Promise((resolve) =>
    ws.addEventListener('message', (e) => resolve((e as MessageEvent).data), { once: true }),
  )
}

export function closeEvent(ws: WebSocket): Promise<CloseEvent> {
  return new Promise((r) => ws.addEventListener('close', (e) => r(e as CloseEvent), { once: true }))
}

export function errorEvent(ws: WebSocket): Promise<ErrorEvent> {
  return new Promise((r) => ws.addEventListener('error', (e) => r(e as ErrorEvent), { once: true }))
}

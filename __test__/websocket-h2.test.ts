// WebSocket over HTTP/2 (RFC 8441). Server: extended CONNECT streams driven by node:http2 as a
// frame-level peer (TLS and h2c), bad input on the h2 path, and headless Chromium opening its
// WebSocket on the page's HTTP/2 connection. Client: `http2: 'always' | 'auto'` against the
// hypersock server, and the fallback against a server without the setting.
import http2 from 'node:http2'
import type { AddressInfo, Socket } from 'node:net'
import { Client, type Server, type ServerWebSocket, serve, WebSocket } from 'hypersock'
import { generateCertificate } from 'hypersock/testing'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocketServer } from 'ws'
import { ECHOED, echoScript, launchChromium } from './browser.js'
import { deferred } from './helpers.js'
import { FrameReader, frame } from './ws-raw.js'

const ca = generateCertificate({ isCa: true, commonName: 'hypersock RFC 8441 test CA' })
const leaf = generateCertificate({ ca })

const cleanups: (() => unknown)[] = []
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c()
})

interface Seen {
  versions: string[]
  closes: Array<[number, string]>
  /** Client ports of the page requests and of the WebSockets. */
  pagePorts: number[]
  wsPorts: number[]
}

/** Resolves once `check` holds (checked as events arrive, no fixed delay). */
async function until(check: () => boolean): Promise<void> {
  const done = deferred<void>()
  const poll = () => (check() ? done.resolve() : setTimeout(poll, 5))
  poll()
  await done.promise
}

async function wsServer(
  secure: boolean,
  extra: { compression?: boolean } = {},
): Promise<{ server: Server; seen: Seen }> {
  const seen: Seen = { versions: [], closes: [], pagePorts: [], wsPorts: [] }
  const server = await serve({
    ...(secure ? { tls: { cert: leaf.cert, key: leaf.key } } : {}),
    fetch: (req) => {
      seen.pagePorts.push(req.remotePort)
      return new Response('<!doctype html><title>h2</title>', { headers: { 'content-type': 'text/html' } })
    },
    websocket: {
      ...extra,
      open: (ws: ServerWebSocket) => {
        seen.versions.push(ws.httpVersion)
        seen.wsPorts.push(ws.remotePort)
      },
      message: (ws, data) => ws.send(data),
      close: (_ws, code, reason) => seen.closes.push([code, reason]),
    },
  })
  cleanups.push(() => server.stop({ graceful: false }))
  return { server, seen }
}

/** An HTTP/2 session to the server that waits for its SETTINGS (and so for ENABLE_CONNECT_PROTOCOL). */
async function session(server: Server, secure: boolean): Promise<http2.ClientHttp2Session> {
  const s = http2.connect(`${secure ? 'https' : 'http'}://127.0.0.1:${server.port}`, secure ? { ca: ca.cert } : {})
  cleanups.push(() => s.destroy())
  await new Promise<void>((resolve, reject) => {
    s.once('remoteSettings', () => resolve())
    s.once('error', reject)
  })
  return s
}

/** A WebSocket on one extended CONNECT stream: masked frames out, the server's frames in. */
class H2Socket extends FrameReader {
  status = 0
  headers: http2.IncomingHttpHeaders = {}
  /** Resolves once the stream is closed, with its RST_STREAM code (0: ended cleanly). */
  readonly closed: Promise<number>

  constructor(readonly stream: http2.ClientHttp2Stream) {
    super()
    stream.on('data', (d: Buffer) => this.push(d))
    stream.on('end', () => this.end())
    this.closed = new Promise((resolve) =>
      stream.on('close', () => {
        this.end()
        resolve(stream.rstCode ?? 0)
      }),
    )
    stream.on('error', () => {})
  }

  static async open(s: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders = {}): Promise<H2Socket> {
    const stream = s.request(
      {
        ':method': 'CONNECT',
        ':protocol': 'websocket',
        ':path': '/chat',
        ':scheme': 'https',
        ':authority': 'localhost',
        'sec-websocket-version': '13',
        ...headers,
      },
      { endStream: false },
    )
    const socket = new H2Socket(stream)
    socket.headers = await new Promise((resolve, reject) => {
      stream.once('response', resolve)
      stream.once('error', reject)
    })
    socket.status = Number(socket.headers[':status'])
    return socket
  }

  send(opcode: number, payload: Buffer | string, opts: { fin?: boolean; rsv?: number } = {}): void {
    this.stream.write(frame(opcode, payload, opts))
  }
}

function closePayload(code: number, reason = ''): Buffer {
  const b = Buffer.alloc(2 + Buffer.byteLength(reason))
  b.writeUInt16BE(code)
  b.write(reason, 2)
  return b
}

describe('WebSocket over HTTP/2 (RFC 8441), server', () => {
  for (const secure of [true, false]) {
    it(`${secure ? 'TLS (ALPN h2)' : 'h2c'}: many WebSockets as streams of one connection, echo, close`, async () => {
      const { server, seen } = await wsServer(secure)
      const s = await session(server, secure)
      expect(s.remoteSettings.enableConnectProtocol).toBe(true)
      const sockets = await Promise.all([1, 2, 3].map(() => H2Socket.open(s)))
      for (const [i, ws] of sockets.entries()) {
        expect(ws.status).toBe(200)
        // No HTTP/1.1 handshake fields over HTTP/2.
        expect(ws.headers['sec-websocket-accept']).toBeUndefined()
        ws.send(1, `hello ${i}`)
        expect((await ws.next())?.payload.toString()).toBe(`hello ${i}`)
        // One frame 16 times the default stream window (64 KiB): it crosses in window-sized
        // pieces both ways, with WINDOW_UPDATEs, and comes back whole.
        ws.send(2, Buffer.alloc(1 << 20, i))
        const big = await ws.next()
        expect([big?.opcode, big?.payload.length, big?.payload[(1 << 20) - 1]]).toEqual([2, 1 << 20, i])
      }
      for (const ws of sockets) {
        ws.send(8, closePayload(4000 + sockets.indexOf(ws), 'bye'))
        expect(await ws.closeCode()).toBe(4000 + sockets.indexOf(ws))
        // The close ends the stream cleanly (END_STREAM, no reset).
        expect(await ws.closed).toBe(http2.constants.NGHTTP2_NO_ERROR)
      }
      expect(seen.versions).toEqual(['2', '2', '2'])
      await until(() => seen.closes.length === 3)
      expect(seen.closes.map(([code]) => code).sort()).toEqual([4000, 4001, 4002])
      const stats = server.stats()
      expect([stats.webSocketsTotal, stats.webSocketsH2Total, stats.connectionsTotal]).toEqual([3, 3, 1])
      // The connection still serves plain requests.
      const req = s.request({ ':path': '/' })
      const status = await new Promise((r) => req.once('response', (h) => r(h[':status'])))
      req.resume()
      expect(status).toBe(200)
    })
  }

  it('does not advertise the setting without a websocket handler; maxConcurrentStreams sets the stream limit', async () => {
    const server = await serve({ tls: { cert: leaf.cert, key: leaf.key }, fetch: () => 'plain' })
    cleanups.push(() => server.stop({ graceful: false }))
    const s = await session(server, true)
    expect(s.remoteSettings.enableConnectProtocol).toBeFalsy()
    expect(s.remoteSettings.maxConcurrentStreams).toBe(256)
    const many = await serve({ maxConcurrentStreams: 5000, fetch: () => 'plain', websocket: {} })
    cleanups.push(() => many.stop({ graceful: false }))
    const m = await session(many, false)
    expect([m.remoteSettings.enableConnectProtocol, m.remoteSettings.maxConcurrentStreams]).toEqual([true, 5000])
  })

  it('bad input on the h2 path gets the right status or close code and leaves other streams alone', async () => {
    const { server, seen } = await wsServer(true)
    const s = await session(server, true)
    const healthy = await H2Socket.open(s)
    expect(healthy.status).toBe(200)
    // Unknown :protocol, missing and wrong versions.
    expect((await H2Socket.open(s, { ':protocol': 'chat' })).status).toBe(400)
    expect((await H2Socket.open(s, { 'sec-websocket-version': undefined })).status).toBe(426)
    const wrong = await H2Socket.open(s, { 'sec-websocket-version': '8' })
    expect([wrong.status, wrong.headers['sec-websocket-version']]).toEqual([426, '13'])
    // A protocol error inside one WebSocket (an unmasked frame... here: a reserved opcode) closes it with 1002.
    const bad = await H2Socket.open(s)
    bad.send(3, 'reserved opcode')
    expect(await bad.closeCode()).toBe(1002)
    // A peer that resets its stream mid-message: the server sees 1006 for that one only.
    const cut = await H2Socket.open(s)
    cut.send(1, 'half a mess', { fin: false })
    cut.stream.close(http2.constants.NGHTTP2_CANCEL)
    await cut.untilEnded()
    await until(() => seen.closes.some(([code]) => code === 1006))
    // The first WebSocket on the connection never noticed.
    healthy.send(1, 'still here')
    expect((await healthy.next())?.payload.toString()).toBe('still here')
    healthy.send(8, closePayload(1000))
    expect(await healthy.closeCode()).toBe(1000)
    expect(server.stats().connectionsTotal).toBe(1)
  })
})

describe('WebSocket over HTTP/2 with headless Chromium', () => {
  it("the page's WebSocket rides its HTTP/2 connection, with compression and close codes", async () => {
    const { server, seen } = await wsServer(true, { compression: true })
    const { browser, close } = await launchChromium({ ignoreHTTPSErrors: true })
    cleanups.push(close)
    const page = await browser.newPage()
    const url = `https://127.0.0.1:${server.port}/`
    const response = await page.goto(url)
    expect(response?.status()).toBe(200)
    const result = await page.evaluate(echoScript(url.replace('https:', 'wss:'), 'over h2 '))
    expect(result).toEqual({ ...ECHOED, extensions: expect.stringContaining('permessage-deflate') })
    expect(seen.versions).toEqual(['2'])
    expect(server.stats().webSocketsH2Total).toBe(1)
    // The WebSocket came from the very TCP + TLS connection that carried the page (Chromium may
    // open spare connections besides, so the count alone would not tell).
    expect(seen.pagePorts.length).toBeGreaterThan(0)
    expect(seen.pagePorts).toContain(seen.wsPorts[0])
    await until(() => seen.closes.length === 1)
    expect(seen.closes).toEqual([[4002, 'tab done']])
  })
})

describe('WebSocket over HTTP/2 (RFC 8441), client', () => {
  function opened(ws: WebSocket): Promise<void> {
    return new Promise((resolve, reject) => {
      ws.addEventListener('open', () => resolve(), { once: true })
      ws.addEventListener('error', (e) => reject((e as ErrorEvent).error), { once: true })
    })
  }
  async function echo(ws: WebSocket, text: string): Promise<unknown> {
    const reply = new Promise((r) => ws.addEventListener('message', (e) => r((e as MessageEvent).data), { once: true }))
    ws.send(text)
    return reply
  }
  async function closeWith(ws: WebSocket, code: number): Promise<number> {
    const closed = new Promise<number>((r) =>
      ws.addEventListener('close', (e) => r((e as CloseEvent).code), { once: true }),
    )
    ws.close(code)
    return closed
  }

  for (const secure of [true, false]) {
    it(`http2: 'always' opens WebSockets as streams of one connection (${secure ? 'TLS' : 'h2c'})`, async () => {
      const { server, seen } = await wsServer(secure, { compression: true })
      const client = new Client(secure ? { tls: { ca: ca.cert } } : { http2: 'always' })
      const url = `${secure ? 'wss' : 'ws'}://127.0.0.1:${server.port}/chat`
      const sockets = [1, 2, 3].map(() => new WebSocket(url, [], { http2: 'always', client }))
      await Promise.all(sockets.map(opened))
      for (const [i, ws] of sockets.entries()) {
        expect(ws.httpVersion).toBe('2')
        expect(ws.extensions).toContain('permessage-deflate')
        expect(await echo(ws, `m${i} `.repeat(1000))).toBe(`m${i} `.repeat(1000))
      }
      expect(await Promise.all(sockets.map((ws, i) => closeWith(ws, 4000 + i)))).toEqual([4000, 4001, 4002])
      expect(seen.versions).toEqual(['2', '2', '2'])
      expect(server.stats().connectionsTotal).toBe(1)
      await until(() => seen.closes.length === 3)
      expect(seen.closes.map(([code]) => code).sort()).toEqual([4000, 4001, 4002])
    })
  }

  it("http2: 'auto' rides an HTTP/2 connection the client holds, else dials HTTP/1.1", async () => {
    const { server, seen } = await wsServer(true)
    const client = new Client({ tls: { ca: ca.cert } })
    const url = `wss://127.0.0.1:${server.port}/chat`
    const tls = { ca: ca.cert }
    // No connection to the origin yet: HTTP/1.1, a connection of its own.
    const first = new WebSocket(url, [], { http2: 'auto', client, tls })
    await opened(first)
    expect(first.httpVersion).toBe('1.1')
    // Once a fetch has opened an HTTP/2 connection, the next WebSocket is a stream on it.
    const page = await client.fetch(`https://127.0.0.1:${server.port}/`)
    expect(page.httpVersion).toBe('HTTP/2')
    await page.text()
    const second = new WebSocket(url, [], { http2: 'auto', client, tls })
    await opened(second)
    expect(second.httpVersion).toBe('2')
    expect(await echo(second, 'over h2')).toBe('over h2')
    expect(seen.versions).toEqual(['1.1', '2'])
    expect(server.stats().connectionsTotal).toBe(2)
    await closeWith(first, 1000)
    await closeWith(second, 1000)
  })

  it("falls back to HTTP/1.1 with 'auto', and fails with 'always', when the server does not take extended CONNECT", async () => {
    // node:http2 with HTTP/1.1 allowed, without enableConnectProtocol; ws answers the upgrades.
    const h2 = http2.createSecureServer({ cert: leaf.cert, key: leaf.key, allowHTTP1: true }, (_req, res) =>
      res.end('page'),
    )
    const wss = new WebSocketServer({ noServer: true })
    wss.on('connection', (sock) => sock.on('message', (d) => sock.send(String(d))))
    h2.on('upgrade', (req, socket, head) =>
      wss.handleUpgrade(req, socket, head, (ws) => wss.emit('connection', ws, req)),
    )
    await new Promise<void>((r) => h2.listen(0, '127.0.0.1', r))
    const sockets: Socket[] = []
    h2.on('connection', (socket) => sockets.push(socket))
    cleanups.push(() => {
      h2.close()
      // The client keeps its connection in its pool: cut it.
      for (const socket of sockets) socket.destroy()
    })
    cleanups.push(() => {
      for (const c of wss.clients) c.terminate()
      wss.close()
    })
    const port = (h2.address() as AddressInfo).port
    const client = new Client({ tls: { ca: ca.cert } })
    await (await client.fetch(`https://127.0.0.1:${port}/`)).text()
    const auto = new WebSocket(`wss://127.0.0.1:${port}/`, [], { http2: 'auto', client, tls: { ca: ca.cert } })
    await opened(auto)
    expect(auto.httpVersion).toBe('1.1')
    expect(await echo(auto, 'via 1.1')).toBe('via 1.1')
    await closeWith(auto, 1000)
    const always = new WebSocket(`wss://127.0.0.1:${port}/`, [], { http2: 'always', client })
    const failure = await new Promise<{ code?: string }>((resolve) =>
      always.addEventListener('error', (e) => resolve((e as ErrorEvent).error), { once: true }),
    )
    expect(failure.code).toBe('ERR_WS_HANDSHAKE')
  })

  it("defaults to 'auto' without tls and proxy options, to HTTP/1.1 with them", async () => {
    const { server, seen } = await wsServer(true)
    const client = new Client({ tls: { ca: ca.cert } })
    await (await client.fetch(`https://127.0.0.1:${server.port}/`)).text()
    const url = `wss://127.0.0.1:${server.port}/chat`
    // No http2 option: the client's HTTP/2 connection carries it.
    const riding = new WebSocket(url, [], { client })
    await opened(riding)
    expect(riding.httpVersion).toBe('2')
    // TLS settings of its own: only a connection of its own can honour them.
    const own = new WebSocket(url, [], { client, tls: { ca: ca.cert } })
    await opened(own)
    expect(own.httpVersion).toBe('1.1')
    expect(seen.versions).toEqual(['2', '1.1'])
    await closeWith(riding, 1000)
    await closeWith(own, 1000)
  })

  it('refuses a bad http2 value', () => {
    expect(() => new WebSocket('wss://127.0.0.1:1/', [], { http2: 'sometimes' as never })).toThrow(/http2 must be/)
  })
})

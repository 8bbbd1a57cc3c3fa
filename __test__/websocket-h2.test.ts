// WebSocket over HTTP/2 (RFC 8441) on the server: extended CONNECT streams driven by node:http2 as
// a frame-level peer (TLS and h2c), bad input on the h2 path, and headless Chromium opening its
// WebSocket on the page's HTTP/2 connection.
import http2 from 'node:http2'
import { type Server, type ServerWebSocket, serve } from 'hypersock'
import { generateCertificate } from 'hypersock/testing'
import { afterEach, describe, expect, it } from 'vitest'
import { ECHOED, echoScript, launchChromium } from './browser.js'
import { deferred } from './helpers.js'
import { type Frame, frame, parseFrame } from './ws-raw.js'

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
class H2Socket {
  #buf: Buffer = Buffer.alloc(0)
  #waiters: (() => void)[] = []
  ended = false
  reset: number | undefined
  status = 0
  headers: http2.IncomingHttpHeaders = {}

  constructor(readonly stream: http2.ClientHttp2Stream) {
    stream.on('data', (d: Buffer) => {
      this.#buf = Buffer.concat([this.#buf, d])
      this.#wake()
    })
    stream.on('end', () => {
      this.ended = true
      this.#wake()
    })
    stream.on('close', () => {
      this.ended = true
      this.reset = stream.rstCode
      this.#wake()
    })
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

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w()
  }

  send(opcode: number, payload: Buffer | string, opts: { fin?: boolean; rsv?: number } = {}): void {
    this.stream.write(frame(opcode, payload, opts))
  }

  /** The next frame from the server, or null once the stream ended. */
  async next(): Promise<Frame | null> {
    for (;;) {
      const parsed = parseFrame(this.#buf)
      if (parsed) {
        this.#buf = parsed.rest
        return parsed.frame
      }
      if (this.ended) return null
      await new Promise<void>((r) => this.#waiters.push(r))
    }
  }

  async closeCode(): Promise<number | null> {
    for (;;) {
      const f = await this.next()
      if (!f) return null
      if (f.opcode === 8) return f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 1005
    }
  }

  async ended_(): Promise<void> {
    while (!this.ended) await new Promise<void>((r) => this.#waiters.push(r))
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
        ws.send(2, Buffer.alloc(100_000, i))
        const big = await ws.next()
        expect([big?.opcode, big?.payload.length, big?.payload[99_999]]).toEqual([2, 100_000, i])
      }
      for (const ws of sockets) {
        ws.send(8, closePayload(4000 + sockets.indexOf(ws), 'bye'))
        expect(await ws.closeCode()).toBe(4000 + sockets.indexOf(ws))
        // The close ends the stream cleanly (END_STREAM, no reset).
        await ws.ended_()
        expect(ws.reset ?? 0).toBe(0)
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

  it('does not advertise the setting without a websocket handler', async () => {
    const server = await serve({ tls: { cert: leaf.cert, key: leaf.key }, fetch: () => 'plain' })
    cleanups.push(() => server.stop({ graceful: false }))
    const s = await session(server, true)
    expect(s.remoteSettings.enableConnectProtocol).toBeFalsy()
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
    await cut.ended_()
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

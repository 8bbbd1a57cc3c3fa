import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import {
  type CloseEvent,
  type ErrorEvent,
  type HypersockError,
  type Server,
  type ServerWebSocket,
  serve,
  WebSocket,
} from 'hypersock'
import { describe, expect, it } from 'vitest'
import WS, { WebSocketServer } from 'ws'
import { deferred, freePort, nextMessage, trackServers } from './helpers.js'

const track = trackServers()

type Closed = { code: number; reason: string }

/** An echo server that reports each connection's close. */
async function echoServer(options: { maxMessageSize?: number } = {}) {
  const closed = deferred<Closed>()
  const opened = deferred<ServerWebSocket>()
  const server = await serve({
    fetch: () => 'plain http',
    websocket: {
      maxMessageSize: options.maxMessageSize,
      open: (ws) => opened.resolve(ws),
      message(ws, data) {
        ws.send(data)
      },
      close(_ws, code, reason) {
        closed.resolve({ code, reason })
      },
    },
  })
  track(server)
  const wsUrl = server.url.href.replace('http:', 'ws:')
  return { server, wsUrl, closed: closed.promise, opened: opened.promise }
}

describe('WebSocket: hypersock client and server', () => {
  it('echoes text and binary and reports close code and reason on both sides', async () => {
    const { wsUrl, closed, server, opened } = await echoServer()
    const ws = new WebSocket(`${wsUrl}chat?room=a`)
    expect(ws.readyState).toBe(WebSocket.CONNECTING)
    ws.binaryType = 'nodebuffer'
    await once(ws, 'open')
    expect(ws.readyState).toBe(WebSocket.OPEN)
    await opened
    expect(server.webSocketCount).toBe(1)
    ws.send('héllo')
    expect(await nextMessage(ws)).toBe('héllo')
    ws.send(new Uint8Array([0, 1, 2, 250]))
    const bin = await nextMessage(ws)
    expect(Buffer.isBuffer(bin)).toBe(true)
    expect([...(bin as Buffer)]).toEqual([0, 1, 2, 250])
    ws.binaryType = 'arraybuffer'
    ws.send(Buffer.from('ab'))
    expect(await nextMessage(ws)).toBeInstanceOf(ArrayBuffer)
    const clientClosed = new Promise<CloseEvent>((r) => ws.addEventListener('close', (e) => r(e as CloseEvent)))
    ws.close(4001, 'done here')
    expect(ws.readyState).toBe(WebSocket.CLOSING)
    expect(await closed).toEqual({ code: 4001, reason: 'done here' })
    const ev = await clientClosed
    expect([ev.code, ev.reason, ev.wasClean]).toEqual([4001, 'done here', true])
    expect(ws.readyState).toBe(WebSocket.CLOSED)
    expect(server.webSocketCount).toBe(0)
  })

  it('gives the server socket the upgrade URL, headers and remote address; server can close', async () => {
    const { wsUrl, opened } = await echoServer()
    const ws = new WebSocket(`${wsUrl}room/7?x=1`, [], { headers: { 'x-token': 'secret' } })
    const sws = await opened
    expect(sws.url).toBe('/room/7?x=1')
    expect(sws.headers.get('x-token')).toBe('secret')
    expect(sws.remoteAddress).toBe('127.0.0.1')
    expect(sws.readyState).toBe(1)
    const closeEv = new Promise<CloseEvent>((r) => ws.addEventListener('close', (e) => r(e as CloseEvent)))
    sws.close(1001, 'going away')
    const ev = await closeEv
    expect([ev.code, ev.reason]).toEqual([1001, 'going away'])
  })

  it('iterates messages with for await until close', async () => {
    const server = await serve({
      fetch: () => 'x',
      websocket: {
        open(ws) {
          ws.send('one')
          ws.send(Buffer.from('two'))
          ws.send('three')
          ws.close(1000, 'bye')
        },
      },
    })
    track(server)
    const ws = new WebSocket(server.url.href.replace('http:', 'ws:'))
    const got: Array<string | Buffer> = []
    for await (const msg of ws) got.push(msg)
    expect(got.map(String)).toEqual(['one', 'two', 'three'])
    expect(Buffer.isBuffer(got[1])).toBe(true)
  })

  it('throws ERR_INVALID_STATE on send while connecting and rejects invalid close arguments', async () => {
    const { wsUrl } = await echoServer()
    const ws = new WebSocket(wsUrl)
    expect(() => ws.send('early')).toThrowError(expect.objectContaining({ code: 'ERR_INVALID_STATE' }))
    expect(() => ws.close(1006)).toThrowError(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => ws.close(1000, 'x'.repeat(124))).toThrowError(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }),
    )
    await once(ws, 'open')
    ws.close()
    await once(ws, 'close')
  })

  it('fails with error then close 1006 when nothing listens', async () => {
    const port = await freePort()
    const ws = new WebSocket(`ws://127.0.0.1:${port}/`)
    const order: string[] = []
    const errored = new Promise<ErrorEvent>((r) => ws.addEventListener('error', (e) => r(e as ErrorEvent)))
    const closed = new Promise<CloseEvent>((r) => ws.addEventListener('close', (e) => r(e as CloseEvent)))
    ws.addEventListener('error', () => order.push('error'))
    ws.addEventListener('close', () => order.push('close'))
    expect(((await errored).error as HypersockError).code).toBe('ECONNREFUSED')
    expect((await closed).code).toBe(1006)
    expect(order).toEqual(['error', 'close'])
  })

  it('fails the handshake with ERR_WS_HANDSHAKE against a plain HTTP server', async () => {
    const server = await serve({ fetch: () => ({ status: 404, body: 'no' }) })
    track(server)
    const ws = new WebSocket(server.url.href.replace('http:', 'ws:'))
    const err = await new Promise<ErrorEvent>((r) => ws.addEventListener('error', (e) => r(e as ErrorEvent)))
    expect((err.error as HypersockError).code).toBe('ERR_WS_HANDSHAKE')
  })

  it('closes with 1009 when a message is over maxMessageSize, and keeps serving others', async () => {
    const { wsUrl, closed } = await echoServer({ maxMessageSize: 1024 })
    const big = new WebSocket(wsUrl)
    await once(big, 'open')
    const closeEv = new Promise<CloseEvent>((r) => big.addEventListener('close', (e) => r(e as CloseEvent)))
    big.send('x'.repeat(2048))
    expect((await closed).code).toBe(1009)
    expect((await closeEv).code).toBe(1009)
    const ok = new WebSocket(wsUrl)
    await once(ok, 'open')
    ok.send('still here')
    expect(await nextMessage(ok)).toBe('still here')
    ok.close()
  })

  it('reports 1006 to the server when a client drops without a close frame', async () => {
    const { wsUrl, closed, opened } = await echoServer()
    const raw = new WS(wsUrl)
    await once(raw, 'open')
    await opened
    raw.terminate()
    expect((await closed).code).toBe(1006)
  })

  it('sends close 1001 to open WebSockets on server stop', async () => {
    const { wsUrl, server } = await echoServer()
    const ws = new WebSocket(wsUrl)
    await once(ws, 'open')
    const closeEv = new Promise<CloseEvent>((r) => ws.addEventListener('close', (e) => r(e as CloseEvent)))
    await server.stop({ timeout: 5000 })
    expect((await closeEv).code).toBe(1001)
  })
})

describe('WebSocket: interop with the ws package', () => {
  it('ws client -> hypersock server: text, binary and close code', async () => {
    const { wsUrl, closed } = await echoServer()
    const client = new WS(wsUrl)
    await once(client, 'open')
    client.send('from ws')
    const [text, isBinary] = await once(client, 'message')
    expect([String(text), isBinary]).toEqual(['from ws', false])
    client.send(Buffer.from([7, 7, 7]))
    const [bin, isBin2] = await once(client, 'message')
    expect([[...(bin as Buffer)], isBin2]).toEqual([[7, 7, 7], true])
    client.close(4321, 'ws says bye')
    expect(await closed).toEqual({ code: 4321, reason: 'ws says bye' })
    const [code] = await once(client, 'close')
    expect(code).toBe(4321)
  })

  it('hypersock client -> ws server: echo, subprotocol, response headers, server-initiated close', async () => {
    const wss = new WebSocketServer({
      host: '127.0.0.1',
      port: 0,
      handleProtocols: (set) => (set.has('v2') ? 'v2' : false),
    })
    await once(wss, 'listening')
    wss.on('headers', (headers) => headers.push('X-From-Ws: yes'))
    wss.on('connection', (sock) => {
      sock.on('message', (data, isBinary) => {
        if (String(data) === 'close me') sock.close(4000, 'as asked')
        else sock.send(data, { binary: isBinary })
      })
    })
    try {
      const port = (wss.address() as AddressInfo).port
      const ws = new WebSocket(`ws://127.0.0.1:${port}/`, ['v1', 'v2'])
      ws.binaryType = 'nodebuffer'
      await once(ws, 'open')
      expect(ws.protocol).toBe('v2')
      expect(ws.responseHeaders?.get('x-from-ws')).toBe('yes')
      ws.send('ping?')
      expect(await nextMessage(ws)).toBe('ping?')
      ws.send(Buffer.from([1, 2]))
      expect([...((await nextMessage(ws)) as Buffer)]).toEqual([1, 2])
      ws.send('close me')
      const [ev] = (await once(ws, 'close')) as [CloseEvent]
      expect([ev.code, ev.reason]).toEqual([4000, 'as asked'])
    } finally {
      wss.close()
    }
  })
})

/** 2048 numbered messages of 16 KiB (32 MiB), sent in one go when a client opens or first speaks. */
const COUNT = 2048
const SIZE = 16 * 1024
async function burstServer(
  on: 'open' | 'message',
  size = SIZE,
): Promise<{ server: Server; opened: ReturnType<typeof deferred<ServerWebSocket>> }> {
  const opened = deferred<ServerWebSocket>()
  const burst = (ws: ServerWebSocket) => {
    for (let i = 0; i < COUNT; i++) {
      const msg = Buffer.alloc(size, i % 251)
      msg.writeUInt32BE(i)
      ws.send(msg)
    }
  }
  const server = track(
    await serve({
      fetch: () => 'plain http',
      websocket: {
        maxBackpressure: 256 * 1024 * 1024,
        open(ws) {
          if (on === 'open') burst(ws)
          opened.resolve(ws)
        },
        message(ws) {
          if (on === 'message') burst(ws)
        },
      },
    }),
  )
  return { server, opened }
}

describe('WebSocket client: the engine bounds what waits for a busy JS thread', () => {
  it('stops reading at 4 MiB of messages JS has not taken, and loses nothing', async () => {
    // 128 MiB: more than the kernel can buffer on loopback even after the client's fast start
    // grew its receive window (tcp_rmem allows up to 32 MiB on common kernels).
    const size = 64 * 1024
    const { server, opened } = await burstServer('message', size)
    const client = new WebSocket(server.url.href.replace('http:', 'ws:'))
    client.binaryType = 'nodebuffer'
    const got: number[] = []
    let last = -1
    let peer: ServerWebSocket | undefined
    client.addEventListener('message', (e) => {
      // The first message finds the server's whole burst queued (it was sent in one synchronous
      // call on this thread). Hold the JS thread right here, taking no further event, until the
      // server's queue stops shrinking: the client reads only while its messages waiting for JS
      // are under the bound.
      if (got.length === 0 && peer) {
        let steadySince = Date.now()
        const giveUp = Date.now() + 10_000
        while (Date.now() < giveUp) {
          const now = peer.bufferedAmount
          if (now !== last) {
            last = now
            steadySince = Date.now()
          } else if (Date.now() - steadySince > 300) break
        }
      }
      got.push(((e as MessageEvent).data as Buffer).readUInt32BE(0))
    })
    await new Promise((r) => client.addEventListener('open', r, { once: true }))
    peer = await opened.promise
    client.send('go')
    while (got.length === 0) await new Promise((r) => setTimeout(r, 10))
    // Without the bound the client would have read the whole 128 MiB into the queue for JS (the
    // server's queue would be empty); with it, the client holds 4 MiB plus the kernel's buffers.
    expect(last).toBeGreaterThan((COUNT * size) / 4)
    while (got.length < COUNT) await new Promise((r) => setTimeout(r, 10))
    expect(got).toEqual(Array.from({ length: COUNT }, (_, i) => i))
    client.close()
  })
})

describe('WebSocket client: async iteration holds the socket', () => {
  it('stops reading while an iterator is behind, and loses nothing', async () => {
    const { server, opened } = await burstServer('open')
    const client = new WebSocket(server.url.href.replace('http:', 'ws:'))
    const it = client[Symbol.asyncIterator]()
    const first = await it.next()
    expect((first.value as Buffer).readUInt32BE(0)).toBe(0)
    const peer = await opened.promise
    // The client reads no further: what it has not taken stays queued on the server. Wait until
    // that stops shrinking (the kernel's buffers and the iterator's 256 messages are full).
    let last = -1
    for (let steady = 0, rounds = 0; steady < 5 && rounds < 400; rounds++) {
      await new Promise((r) => setTimeout(r, 25))
      const now = peer.bufferedAmount
      steady = now === last ? steady + 1 : 0
      last = now
    }
    // Without the hold, the client would have read all 32 MiB into memory and the server's queue
    // would be empty.
    expect(last).toBeGreaterThan((COUNT * SIZE) / 2)
    for (let i = 1; i < COUNT; i++) {
      const { value, done } = await it.next()
      expect(done).toBe(false)
      expect((value as Buffer).length).toBe(SIZE)
      expect((value as Buffer).readUInt32BE(0)).toBe(i)
    }
    expect(peer.bufferedAmount).toBe(0)
    client.close()
    expect((await it.next()).done).toBe(true)
  })
})

// The Hub through the public API over real sockets: registry, rooms, metadata, publish and
// broadcast (text, binary, compressed, except), slow receivers, heartbeat and limits, with the
// `ws` package and hypersock's own WebSocket client as peers.
import { once } from 'node:events'
import {
  Hub,
  type HypersockError,
  prepare,
  RedisAdapter,
  type Server,
  type ServerWebSocket,
  serve,
  serveWebSocket,
  WebSocket,
} from 'hypersock'
import { describe, expect, it } from 'vitest'
import WS from 'ws'
import { deferred, joinRoomsFromQuery, trackServers } from './helpers.js'
import { RawClient } from './ws-raw.js'

const track = trackServers()

/** A `ws` client that records what it receives. */
async function wsPeer(port: number, path = '/') {
  const ws = new WS(`ws://127.0.0.1:${port}${path}`)
  const got: Array<{ data: string | Buffer; binary: boolean }> = []
  const waiters: Array<() => void> = []
  ws.on('message', (data: Buffer, binary: boolean) => {
    got.push({ data: binary ? data : data.toString(), binary })
    for (const w of waiters.splice(0)) w()
  })
  await once(ws, 'open')
  const until = async (n: number) => {
    while (got.length < n) await new Promise<void>((r) => waiters.push(r))
  }
  return { ws, got, until }
}

/** A hypersock WebSocket client that records text messages. */
async function hsPeer(port: number, path = '/') {
  const ws = new WebSocket(`ws://127.0.0.1:${port}${path}`)
  const got: string[] = []
  const waiters: Array<() => void> = []
  ws.addEventListener('message', (e) => {
    got.push(String((e as MessageEvent).data))
    for (const w of waiters.splice(0)) w()
  })
  await once(ws, 'open')
  const until = async (n: number) => {
    while (got.length < n) await new Promise<void>((r) => waiters.push(r))
  }
  return { ws, got, until }
}

/** A server whose `open` joins the rooms named in `?rooms=a,b` and reports every open socket. */
async function roomServer(hub: Hub, extra: Record<string, unknown> = {}) {
  const opened: ServerWebSocket[] = []
  const waiters: Array<() => void> = []
  const closed: Array<{ id: number; rooms: string[]; code: number }> = []
  const closeWaiters: Array<() => void> = []
  const server = track(
    await serveWebSocket({
      hub,
      open(ws) {
        joinRoomsFromQuery(hub, ws)
        opened.push(ws)
        for (const w of waiters.splice(0)) w()
      },
      close(ws, code) {
        closed.push({ id: ws.id, rooms: hub.rooms(ws), code })
        for (const w of closeWaiters.splice(0)) w()
      },
      ...extra,
    }),
  )
  const openedCount = async (n: number) => {
    while (opened.length < n) await new Promise<void>((r) => waiters.push(r))
  }
  const closedCount = async (n: number) => {
    while (closed.length < n) await new Promise<void>((r) => closeWaiters.push(r))
  }
  return { server, opened, openedCount, closed, closedCount }
}

describe('Hub: registry and rooms', () => {
  it('registers connections by id, joins rooms and leaves them all on close', async () => {
    const hub = new Hub()
    const { server, opened, openedCount, closed, closedCount } = await roomServer(hub)
    expect(server.hub).toBe(hub)
    const a = await wsPeer(server.port, '/?rooms=red,blue')
    const b = await hsPeer(server.port, '/?rooms=red')
    await openedCount(2)
    expect(hub.size).toBe(2)
    const [wa, wb] = opened as [ServerWebSocket, ServerWebSocket]
    expect(hub.get(wa.id)).toBe(wa)
    expect(hub.get(123456)).toBeUndefined()
    expect(hub.rooms(wa)).toEqual(['blue', 'red'])
    expect(hub.rooms(wb.id)).toEqual(['red'])
    expect(hub.has(wa, 'blue')).toBe(true)
    expect(hub.has(wb, 'blue')).toBe(false)
    expect(hub.roomSize('red')).toBe(2)
    expect(hub.roomSize('blue')).toBe(1)
    expect(hub.roomNames()).toEqual(['blue', 'red'])
    expect(
      hub
        .members('red')
        .map((w) => w.id)
        .sort(),
    ).toEqual([wa.id, wb.id].sort())
    expect(hub.join(wa, 'red')).toBe(false)
    expect(hub.leave(wa, 'blue')).toBe(true)
    expect(hub.leave(wa, 'blue')).toBe(false)
    expect(hub.roomSize('blue')).toBe(0)
    expect(await hub.clusterRoomSize('red')).toBe(2)

    a.ws.close()
    await closedCount(1)
    // The connection left its rooms before the close handler ran.
    expect(closed[0]).toMatchObject({ id: wa.id, rooms: [] })
    expect(hub.roomSize('red')).toBe(1)
    expect(hub.size).toBe(1)
    expect(hub.join(wa, 'red')).toBe(false)
    b.ws.close()
    await closedCount(2)
    expect(hub.roomNames()).toEqual([])
    expect(hub.size).toBe(0)
  })

  it('keeps per-connection metadata readable and writable from handlers', async () => {
    const hub = new Hub()
    const seen = deferred<Record<string, string>>()
    const server = track(
      await serveWebSocket({
        hub,
        open(ws) {
          hub.setMeta(ws, 'user', new URL(ws.url, 'http://x').searchParams.get('user') ?? '')
          hub.setMeta(ws, 'role', 'guest')
        },
        message(ws, data) {
          hub.setMeta(ws, 'role', null)
          hub.setMeta(ws, 'last', String(data))
          seen.resolve({ ...hub.meta(ws), user: hub.getMeta(ws, 'user') ?? '?' })
        },
      }),
    )
    const peer = await wsPeer(server.port, '/?user=ann')
    peer.ws.send('hello')
    expect(await seen.promise).toEqual({ user: 'ann', last: 'hello' })
    expect(() => hub.setMeta(1, 'k', 5 as unknown as string)).toThrow()
    // A key other processes could not be told whole (clusterMembers sends it with a 16-bit length).
    expect(() => hub.setMeta(1, 'k'.repeat(0x10000), 'v')).toThrow(/65535 bytes/)
    expect(() => hub.setMeta(1, 'é'.repeat(0x8000), 'v')).toThrow(/65535 bytes/)
    peer.ws.close()
  })

  it('refuses to be used before it belongs to a server, or by two servers', async () => {
    const hub = new Hub()
    expect(() => hub.join(1, 'r')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_STATE' }))
    expect(hub.size).toBe(0)
    track(await serveWebSocket({ hub }))
    await expect(serveWebSocket({ hub })).rejects.toMatchObject({ code: 'ERR_INVALID_STATE' })
    expect(() => hub.join(1, '')).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    expect(() => new Hub({ slowConsumer: 'drop' as 'skip' })).toThrow()
    const adapter = new RedisAdapter({ url: 'redis://127.0.0.1:1' })
    new Hub({ adapter })
    expect(() => new Hub({ adapter })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_STATE' }))
    expect(() => new RedisAdapter({ url: 'http://x' })).toThrow(expect.objectContaining({ code: 'ERR_INVALID_URL' }))
  })

  it('gives every server a hub of its own when none is passed', async () => {
    const joined = deferred<void>()
    const server: Server = track(
      await serve({
        fetch: () => new Response('ok'),
        websocket: {
          open(ws) {
            server.hub.join(ws, 'all')
            joined.resolve()
          },
        },
      }),
    )
    const peer = await wsPeer(server.port)
    await joined.promise
    expect(server.hub.publish('all', 'hi').sent).toBe(1)
    await peer.until(1)
    expect(peer.got[0]).toEqual({ data: 'hi', binary: false })
    peer.ws.close()
  })
})

describe('Hub: publish and broadcast', () => {
  it('publishes to a room, except one or a set, and broadcasts to all, text and binary', async () => {
    const hub = new Hub()
    const { server, opened, openedCount } = await roomServer(hub)
    const a = await wsPeer(server.port, '/?rooms=room')
    const b = await wsPeer(server.port, '/?rooms=room')
    const c = await hsPeer(server.port, '/?rooms=room')
    const d = await wsPeer(server.port, '/')
    await openedCount(4)
    const [wa, wb] = opened as [ServerWebSocket, ServerWebSocket]

    expect(hub.publish('room', 'one')).toEqual({ sent: 3, skipped: 0, dropped: 0 })
    expect(hub.publish('room', 'two', { except: wa }).sent).toBe(2)
    expect(hub.publish('room', 'three', { except: [wa, wb.id] }).sent).toBe(1)
    expect(hub.publish('room', Buffer.from([1, 2, 3]), { except: new Set([wb]) }).sent).toBe(2)
    expect(hub.broadcast('four', { except: wa }).sent).toBe(3)
    expect(hub.broadcast(prepare(new Uint8Array([9]))).sent).toBe(4)
    expect(hub.publish('empty', 'nobody').sent).toBe(0)

    await a.until(3)
    expect(a.got).toEqual([
      { data: 'one', binary: false },
      { data: Buffer.from([1, 2, 3]), binary: true },
      { data: Buffer.from([9]), binary: true },
    ])
    await b.until(4)
    expect(b.got.map((m) => m.data)).toEqual(['one', 'two', 'four', Buffer.from([9])])
    await c.until(6)
    expect(c.got.slice(0, 3)).toEqual(['one', 'two', 'three'])
    expect(c.got[4]).toBe('four')
    await d.until(2)
    expect(d.got).toEqual([
      { data: 'four', binary: false },
      { data: Buffer.from([9]), binary: true },
    ])
    for (const p of [a, b, d]) p.ws.close()
    c.ws.close()
  })

  it('fans out one compressed frame to peers that negotiated permessage-deflate and plain to others', async () => {
    const hub = new Hub()
    const { server, openedCount } = await roomServer(hub, { compression: { threshold: 0 } })
    const deflating = await wsPeer(server.port, '/?rooms=r')
    const plain = new WS(`ws://127.0.0.1:${server.port}/?rooms=r`, { perMessageDeflate: false })
    const plainGot: string[] = []
    plain.on('message', (d: Buffer) => plainGot.push(d.toString()))
    await once(plain, 'open')
    await openedCount(2)
    expect(deflating.ws.extensions).toContain('permessage-deflate')
    const text = 'hypersock '.repeat(2000)
    for (let i = 0; i < 3; i++) hub.publish('r', `${i}:${text}`)
    await deflating.until(3)
    expect(deflating.got.map((m) => m.data)).toEqual([0, 1, 2].map((i) => `${i}:${text}`))
    while (plainGot.length < 3) await once(plain, 'message')
    expect(plainGot).toEqual([0, 1, 2].map((i) => `${i}:${text}`))
    deflating.ws.close()
    plain.close()
  })

  it('skips a receiver that does not read, without holding up the others', async () => {
    const hub = new Hub({ maxBackpressure: 256 * 1024 })
    const { server, openedCount } = await roomServer(hub)
    const fast = await wsPeer(server.port)
    const stuck = await RawClient.connect(server.port)
    await stuck.handshake()
    stuck.socket.pause()
    await openedCount(2)
    const chunk = Buffer.alloc(64 * 1024, 7)
    let published = 0
    let skipped = 0
    while (published < 2000 && skipped === 0) {
      const r = hub.broadcast(chunk)
      published++
      skipped += r.skipped
      expect(r.dropped).toBe(0)
      // Let the fast peer read and the stuck one's socket buffers fill.
      await fast.until(published)
    }
    expect(skipped).toBe(1)
    expect(hub.size).toBe(2)
    // The fast peer got every message, the one that the stuck peer missed included.
    expect(fast.got.length).toBe(published)
    fast.ws.close()
    stuck.destroy()
  })

  it("drops a receiver that does not read with close code 1008 under slowConsumer: 'close'", async () => {
    const hub = new Hub({ slowConsumer: 'close', maxBackpressure: 256 * 1024 })
    const { server, openedCount, closed, closedCount } = await roomServer(hub)
    const fast = await wsPeer(server.port)
    const stuck = await RawClient.connect(server.port)
    await stuck.handshake()
    stuck.socket.pause()
    await openedCount(2)
    const chunk = Buffer.alloc(64 * 1024, 7)
    let dropped = 0
    for (let i = 0; i < 2000 && dropped === 0; i++) {
      dropped += hub.broadcast(chunk).dropped
      await fast.until(i + 1)
    }
    expect(dropped).toBe(1)
    await closedCount(1)
    expect(closed[0]?.code).toBe(1008)
    expect(hub.size).toBe(1)
    const n = fast.got.length
    expect(hub.broadcast('still here').sent).toBe(1)
    await fast.until(n + 1)
    fast.ws.close()
    stuck.destroy()
  })
})

describe('Hub: heartbeat and limits (the WebSocket options)', () => {
  it('removes a peer that stops answering pings from its rooms', async () => {
    const hub = new Hub()
    const { server, openedCount, closed, closedCount } = await roomServer(hub, { pingInterval: 50, pongTimeout: 100 })
    const alive = await wsPeer(server.port, '/?rooms=r')
    const dead = await RawClient.connect(server.port)
    await dead.handshake('/?rooms=r')
    await openedCount(2)
    expect(hub.roomSize('r')).toBe(2)
    await closedCount(1)
    expect(closed[0]?.code).toBe(1006)
    expect(hub.roomSize('r')).toBe(1)
    expect(hub.publish('r', 'x').sent).toBe(1)
    alive.ws.close()
    dead.destroy()
  })

  it('applies maxConnections, allowedOrigins and maxMessageSize to hub servers', async () => {
    const hub = new Hub()
    const errors: string[] = []
    const { server, openedCount, closedCount } = await roomServer(hub, {
      maxConnections: 1,
      allowedOrigins: ['https://ok.example'],
      maxMessageSize: 10,
      error: (_ws: ServerWebSocket, e: HypersockError) => errors.push(e.code),
    })
    const first = await wsPeer(server.port, '/?rooms=r')
    await openedCount(1)
    const second = new WS(`ws://127.0.0.1:${server.port}/`)
    const [, res] = await once(second, 'unexpected-response')
    expect(res.statusCode).toBe(503)
    first.ws.send('x'.repeat(11))
    const [code] = await once(first.ws, 'close')
    expect(code).toBe(1009)
    await closedCount(1)
    expect(hub.size).toBe(0)
    const foreign = new WS(`ws://127.0.0.1:${server.port}/`, { origin: 'https://evil.example' })
    const [, res2] = await once(foreign, 'unexpected-response')
    expect(res2.statusCode).toBe(403)
    expect(errors).toContain('ERR_WS_MESSAGE_TOO_BIG')
  })
})

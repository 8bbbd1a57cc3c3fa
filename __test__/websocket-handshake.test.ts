// WebSocket handshakes: the upgrade hook, origins, handshake policy and limits.
import { once } from 'node:events'
import {
  type HypersockError,
  type ServerWebSocket,
  serve,
  serveWebSocket,
  type UpgradeRequest,
  WebSocket,
} from 'hypersock'
import { describe, expect, it } from 'vitest'
import WS from 'ws'
import { closeEvent, deferred, errorEvent, nextMessage, rawExchange, trackServers, wsUrl } from './helpers.js'
import { frame, RawClient } from './ws-raw.js'

const track = trackServers()

describe('upgrade hook', () => {
  it('sees the request and accepts with a subprotocol, extra headers and data', async () => {
    let seen: UpgradeRequest | undefined
    const opened = deferred<ServerWebSocket<{ user: string }>>()
    const server = track(
      await serve<{ user: string }>({
        fetch: () => 'http',
        websocket: {
          async upgrade(req) {
            seen = req
            await new Promise((r) => setTimeout(r, 1))
            return { protocol: 'v2', headers: { 'x-extra': 'yes' }, data: { user: req.query.get('user') ?? '' } }
          },
          open: (ws) => opened.resolve(ws),
          message: (ws, data) => ws.send(`${ws.data.user}:${data}`),
        },
      }),
    )
    const ws = new WebSocket(wsUrl(server, '/room/1?user=ann'), ['v1', 'v2'], { headers: { 'x-token': 't0k' } })
    await once(ws, 'open')
    expect(seen?.method).toBe('GET')
    expect(seen?.path).toBe('/room/1')
    expect(seen?.url).toBe('/room/1?user=ann')
    expect(seen?.headers.get('x-token')).toBe('t0k')
    expect(seen?.remoteAddress).toBe('127.0.0.1')
    expect(seen?.remotePort).toBeGreaterThan(0)
    expect(seen?.protocols).toEqual(['v1', 'v2'])
    expect(ws.protocol).toBe('v2')
    expect(ws.responseHeaders?.get('x-extra')).toBe('yes')
    const sws = await opened.promise
    expect(sws.data).toEqual({ user: 'ann' })
    expect(sws.protocol).toBe('v2')
    ws.send('hi')
    expect(await nextMessage(ws)).toBe('ann:hi')
    ws.close()
    await closeEvent(ws)
  })

  it('rejects with a status, headers and body; false gives 403; a throwing hook gives 500', async () => {
    const opened: unknown[] = []
    const server = track(
      await serve({
        fetch: () => 'http',
        error: () => undefined,
        websocket: {
          upgrade(req) {
            if (req.path === '/deny') return { status: 401, headers: { 'www-authenticate': 'Bearer' }, body: 'who?' }
            if (req.path === '/no') return false
            if (req.path === '/resp') return new Response('teapot', { status: 418 })
            throw new Error('hook failed')
          },
          open: (ws) => opened.push(ws),
        },
      }),
    )
    const hs = (path: string) =>
      rawExchange(
        server.port,
        [
          `GET ${path} HTTP/1.1`,
          'Host: x',
          'Upgrade: websocket',
          'Connection: Upgrade',
          'Sec-WebSocket-Version: 13',
          'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
          '',
          '',
        ].join('\r\n'),
      )
    const denied = await hs('/deny')
    expect(denied).toMatch(/^HTTP\/1\.1 401/)
    expect(denied.toLowerCase()).toContain('www-authenticate: bearer')
    expect(denied).toMatch(/who\?$/)
    expect(await hs('/no')).toMatch(/^HTTP\/1\.1 403/)
    const teapot = await hs('/resp')
    expect(teapot).toMatch(/^HTTP\/1\.1 418/)
    expect(teapot).toMatch(/teapot$/)
    expect(await hs('/boom')).toMatch(/^HTTP\/1\.1 500/)
    const ws = new WebSocket(wsUrl(server, '/deny'))
    expect(((await errorEvent(ws)).error as HypersockError).code).toBe('ERR_WS_HANDSHAKE')
    expect(opened).toEqual([])
    expect(server.webSocketCount).toBe(0)
  })
})

describe('handshake policy and limits', () => {
  it('enforces the Origin allow-list', async () => {
    const server = track(
      await serveWebSocket({ allowedOrigins: ['https://good.example'], message: (ws, d) => ws.send(d) }),
    )
    const bad = new WebSocket(wsUrl(server), [], { headers: { origin: 'https://evil.example' } })
    const err = (await errorEvent(bad)).error as HypersockError
    expect(err.code).toBe('ERR_WS_HANDSHAKE')
    expect(err.message).toContain('403')
    const good = new WebSocket(wsUrl(server), [], { headers: { origin: 'https://good.example' } })
    await once(good, 'open')
    const noOrigin = new WebSocket(wsUrl(server))
    await once(noOrigin, 'open')
    good.close()
    noOrigin.close()
  })

  it('refuses connections over maxConnections with 503', async () => {
    const server = track(await serveWebSocket({ maxConnections: 1 }))
    const first = new WebSocket(wsUrl(server))
    await once(first, 'open')
    const second = new WebSocket(wsUrl(server))
    const err = (await errorEvent(second)).error as HypersockError
    expect(err.code).toBe('ERR_WS_HANDSHAKE')
    expect(err.message).toContain('503')
    first.close()
  })

  it('closes an idle connection with 1001', async () => {
    const closed = deferred<number>()
    const errors: string[] = []
    const server = track(
      await serveWebSocket({
        idleTimeout: 100,
        close: (_ws, code) => closed.resolve(code),
        error: (_ws, e) => errors.push((e as HypersockError).code),
      }),
    )
    const raw = await RawClient.connect(server.port)
    await raw.handshake()
    expect(await raw.closeCode()).toBe(1001)
    raw.send(frame(8, Buffer.from([0x03, 0xe9])))
    expect(await closed.promise).toBe(1001)
    expect(errors).toEqual(['ETIMEDOUT'])
    raw.destroy()
  })

  it('heartbeat: pings, reports pongs, and drops a peer that never answers with 1006', async () => {
    const pongs: string[] = []
    const closes: number[] = []
    const server = track(
      await serveWebSocket({
        pingInterval: 50,
        pongTimeout: 100,
        pong: (_ws, data) => pongs.push(data.toString()),
        close: (_ws, code) => closes.push(code),
      }),
    )
    // A real client answers the heartbeat.
    const alive = new WS(wsUrl(server))
    await once(alive, 'open')
    while (pongs.length < 2) await new Promise((r) => setTimeout(r, 20))
    // A raw peer that never answers pings is dropped.
    const raw = await RawClient.connect(server.port)
    await raw.handshake()
    const ping = await raw.next()
    expect(ping?.opcode).toBe(9)
    await new Promise((r) => raw.socket.once('close', r))
    while (closes.length < 1) await new Promise((r) => setTimeout(r, 10))
    expect(closes).toEqual([1006])
    expect(alive.readyState).toBe(WS.OPEN)
    alive.close()
  })

  it('calls ping and pong handlers with the payload', async () => {
    const pinged = deferred<string>()
    const ponged = deferred<string>()
    const server = track(
      await serveWebSocket({
        ping: (_ws, data) => pinged.resolve(data.toString()),
        pong: (_ws, data) => ponged.resolve(data.toString()),
        open: (ws) => ws.ping('from server'),
      }),
    )
    const client = new WS(wsUrl(server))
    const gotPong = new Promise((r) => client.on('pong', (d) => r(d.toString())))
    await once(client, 'open')
    client.ping('from client')
    expect(await pinged.promise).toBe('from client')
    expect(await gotPong).toBe('from client')
    expect(await ponged.promise).toBe('from server')
    client.close()
  })
})

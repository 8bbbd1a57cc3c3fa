// Bad input from a WebSocket peer: each case gets the right HTTP status or close code, the
// close handler runs once, and another client on the same server keeps being served.
import { once } from 'node:events'
import { type Server, serve, serveWebSocket, WebSocket } from 'hypersock'
import { afterEach, describe, expect, it } from 'vitest'
import WS from 'ws'
import { exchange, rawExchange } from './helpers.js'
import { frame, RawClient } from './ws-raw.js'

const servers: Server[] = []
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop({ graceful: false })))
})

type Closed = { code: number; reason: string }

async function echoServer() {
  const closes: Closed[] = []
  const errors: string[] = []
  const server = await serve({
    fetch: () => 'plain http',
    websocket: {
      maxMessageSize: 1024,
      message: (ws, data) => ws.send(data),
      close: (_ws, code, reason) => closes.push({ code, reason }),
      error: (_ws, err) => errors.push((err as Error & { code: string }).code),
    },
  })
  servers.push(server)
  // A well-behaved client that must be unaffected by the bad ones.
  const good = new WebSocket(`ws://127.0.0.1:${server.port}/`)
  await once(good, 'open')
  return { server, closes, errors, good }
}

async function stillServes(good: WebSocket): Promise<void> {
  const reply = new Promise((r) => good.addEventListener('message', (e) => r((e as MessageEvent).data), { once: true }))
  good.send('still here')
  expect(await reply).toBe('still here')
}

function upgradeRequest(lines: string[]): string {
  return `${lines.join('\r\n')}\r\n\r\n`
}

const base = ['Host: localhost', 'Upgrade: websocket', 'Connection: Upgrade']

describe('WebSocket bad handshakes', () => {
  it('answers 400 without a key, 426 with a wrong version, 400 for POST, and keeps serving', async () => {
    const { server, good } = await echoServer()
    const noKey = await rawExchange(
      server.port,
      upgradeRequest(['GET / HTTP/1.1', ...base, 'Sec-WebSocket-Version: 13']),
    )
    expect(noKey).toMatch(/^HTTP\/1\.1 400/)
    const badKey = await rawExchange(
      server.port,
      upgradeRequest(['GET / HTTP/1.1', ...base, 'Sec-WebSocket-Version: 13', 'Sec-WebSocket-Key: short']),
    )
    expect(badKey).toMatch(/^HTTP\/1\.1 400/)
    const version = await rawExchange(
      server.port,
      upgradeRequest([
        'GET / HTTP/1.1',
        ...base,
        'Sec-WebSocket-Version: 8',
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      ]),
    )
    expect(version).toMatch(/^HTTP\/1\.1 426/)
    expect(version.toLowerCase()).toContain('sec-websocket-version: 13')
    const post = await rawExchange(
      server.port,
      upgradeRequest([
        'POST / HTTP/1.1',
        ...base,
        'Content-Length: 0',
        'Sec-WebSocket-Version: 13',
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      ]),
    )
    expect(post).toMatch(/^HTTP\/1\.1 400/)
    await stillServes(good)
    good.close()
  })

  it('treats a request with a bad Upgrade header as plain HTTP (426 on a WebSocket-only server)', async () => {
    const server = await serveWebSocket({ message: (ws, d) => ws.send(d) })
    servers.push(server)
    const res = await rawExchange(
      server.port,
      upgradeRequest([
        'GET / HTTP/1.1',
        'Host: localhost',
        'Upgrade: websockets-please',
        'Connection: Upgrade',
        'Sec-WebSocket-Version: 13',
        'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      ]),
    )
    expect(res).toMatch(/^HTTP\/1\.1 426/)
    const ws = new WebSocket(`ws://127.0.0.1:${server.port}/`)
    await once(ws, 'open')
    ws.close()
  })
})

describe('WebSocket bad frames', () => {
  const cases: Array<[string, Buffer[], number, string]> = [
    ['an unmasked client frame', [frame(1, 'hi', { mask: false })], 1002, 'ERR_WS_PROTOCOL'],
    ['reserved bits without an extension', [frame(1, 'hi', { rsv: 4 })], 1002, 'ERR_WS_PROTOCOL'],
    ['RSV2', [frame(2, 'hi', { rsv: 2 })], 1002, 'ERR_WS_PROTOCOL'],
    ['an oversized control frame', [frame(9, Buffer.alloc(126))], 1002, 'ERR_WS_PROTOCOL'],
    ['a fragmented control frame', [frame(9, 'x', { fin: false })], 1002, 'ERR_WS_PROTOCOL'],
    ['a reserved data opcode', [frame(3, 'x')], 1002, 'ERR_WS_PROTOCOL'],
    ['a reserved control opcode', [frame(0xb, 'x')], 1002, 'ERR_WS_PROTOCOL'],
    ['a continuation with nothing to continue', [frame(0, 'x')], 1002, 'ERR_WS_PROTOCOL'],
    ['a new message inside a fragmented one', [frame(1, 'a', { fin: false }), frame(1, 'b')], 1002, 'ERR_WS_PROTOCOL'],
    ['invalid UTF-8 in a text message', [frame(1, Buffer.from([0xce, 0xba, 0xff]))], 1007, 'ERR_WS_INVALID_UTF8'],
    [
      'invalid UTF-8 split across fragments',
      [frame(1, Buffer.from([0xce]), { fin: false }), frame(0, Buffer.from([0x41]))],
      1007,
      'ERR_WS_INVALID_UTF8',
    ],
    ['a 1-byte close payload', [frame(8, Buffer.from([3]))], 1002, 'ERR_WS_PROTOCOL'],
    ['an invalid close code', [frame(8, Buffer.from([0x03, 0xec]))], 1002, 'ERR_WS_PROTOCOL'],
    ['a message over maxMessageSize', [frame(2, Buffer.alloc(2000))], 1009, 'ERR_WS_MESSAGE_TOO_BIG'],
    [
      'fragments adding up over maxMessageSize',
      [frame(2, Buffer.alloc(600), { fin: false }), frame(0, Buffer.alloc(600))],
      1009,
      'ERR_WS_MESSAGE_TOO_BIG',
    ],
  ]
  for (const [name, frames, code, errCode] of cases) {
    it(`closes with ${code} on ${name}, and other clients are unaffected`, async () => {
      const { server, closes, errors, good } = await echoServer()
      const raw = await RawClient.connect(server.port)
      expect(await raw.handshake()).toMatch(/^HTTP\/1\.1 101/)
      for (const f of frames) raw.send(f)
      expect(await raw.closeCode()).toBe(code)
      // The close handler runs once the server is done with the connection.
      while (closes.length === 0) await new Promise((r) => setTimeout(r, 5))
      expect(closes).toEqual([{ code, reason: expect.any(String) }])
      expect(errors).toEqual([errCode])
      await stillServes(good)
      good.close()
    })
  }

  it('reports 1006 for a truncated frame followed by a dropped connection', async () => {
    const { server, closes, good } = await echoServer()
    const raw = await RawClient.connect(server.port)
    await raw.handshake()
    raw.send(frame(2, Buffer.alloc(10)).subarray(0, 9))
    raw.socket.end()
    while (closes.length === 0) await new Promise((r) => setTimeout(r, 10))
    expect(closes).toEqual([{ code: 1006, reason: '' }])
    await stillServes(good)
    good.close()
  })

  it('answers pings with the same payload even between fragments', async () => {
    const { server } = await echoServer()
    const raw = await RawClient.connect(server.port)
    await raw.handshake()
    raw.send(Buffer.concat([frame(1, 'he', { fin: false }), frame(9, 'probe'), frame(0, 'llo')]))
    const pong = await raw.next()
    expect([pong?.opcode, pong?.payload.toString()]).toEqual([10, 'probe'])
    const msg = await raw.next()
    expect([msg?.opcode, msg?.payload.toString()]).toEqual([1, 'hello'])
    raw.send(frame(8, Buffer.from([0x03, 0xe8])))
    expect(await raw.closeCode()).toBe(1000)
    raw.destroy()
  })
})

/** A server on loopback, stopped after the test. */
async function start(options: Parameters<typeof serve>[0]): Promise<Server> {
  const server = await serve({ hostname: '127.0.0.1', port: 0, ...options })
  servers.push(server)
  return server
}

describe('WebSocket handshake and counters', () => {
  it('answers 400 to a repeated Sec-WebSocket-Key or Sec-WebSocket-Version', async () => {
    const server = await start({ fetch: () => 'x', websocket: { message() {} } })
    const base = 'GET / HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
    const key = 'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n'
    const version = 'Sec-WebSocket-Version: 13\r\n'
    for (const head of [base + key + key + version, base + key + version + version]) {
      const { responses } = await exchange(server.port, `${head}\r\n`, 1)
      expect(responses[0]?.status).toBe(400)
      expect(responses[0]?.body.toString()).toMatch(/must appear once/)
    }
    const ok = await exchange(server.port, `${base + key + version}\r\n`, 1, true)
    expect(ok.responses[0]?.status).toBe(101)
  })

  it('counts WebSockets in webSocketsTotal and their connections in connectionsOpen', async () => {
    const server = await start({
      fetch: () => 'x',
      websocket: {
        message(ws, data) {
          ws.send(data)
        },
      },
    })
    const clients = await Promise.all(
      Array.from({ length: 3 }, async () => {
        const ws = new WS(`ws://127.0.0.1:${server.port}/`)
        await once(ws, 'open')
        ws.send('hi')
        await once(ws, 'message')
        return ws
      }),
    )
    const stats = server.stats()
    expect(stats.webSocketsTotal).toBe(3)
    expect(stats.webSocketsOpen).toBe(3)
    expect(stats.connectionsOpen).toBe(3)
    expect(server.metrics()).toMatch(/hypersock_websockets_total 3\n/)
    await Promise.all(
      clients.map((ws) => {
        ws.close()
        return once(ws, 'close')
      }),
    )
    for (let i = 0; i < 500 && server.stats().connectionsOpen > 0; i++) await new Promise((r) => setTimeout(r, 10))
    expect(server.stats().connectionsOpen).toBe(0)
    expect(server.stats().webSocketsTotal).toBe(3)
  })
})

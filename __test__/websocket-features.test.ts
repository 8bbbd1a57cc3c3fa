// WebSocket server and client features through the public API: upgrade hook, origins, limits,
// heartbeat, backpressure, pre-framed messages, compression, the standalone server, IPv6.
import { once } from 'node:events'
import net from 'node:net'
import {
  type CloseEvent,
  type ErrorEvent,
  type HypersockError,
  prepare,
  type Server,
  type ServerWebSocket,
  serve,
  serveWebSocket,
  type UpgradeRequest,
  WebSocket,
} from 'hypersock'
import { describe, expect, it } from 'vitest'
import WS, { WebSocketServer } from 'ws'
import { deferred, rawExchange, trackServers } from './helpers.js'
import { frame, RawClient } from './ws-raw.js'

const track = trackServers()

function url(server: Server<unknown>, path = '/'): string {
  return `ws://127.0.0.1:${server.port}${path}`
}

function nextMessage(ws: WebSocket): Promise<unknown> {
  return new Promise((resolve) =>
    ws.addEventListener('message', (e) => resolve((e as MessageEvent).data), { once: true }),
  )
}

function closeEvent(ws: WebSocket): Promise<CloseEvent> {
  return new Promise((r) => ws.addEventListener('close', (e) => r(e as CloseEvent), { once: true }))
}

function errorEvent(ws: WebSocket): Promise<ErrorEvent> {
  return new Promise((r) => ws.addEventListener('error', (e) => r(e as ErrorEvent), { once: true }))
}

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
    const ws = new WebSocket(url(server, '/room/1?user=ann'), ['v1', 'v2'], { headers: { 'x-token': 't0k' } })
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
    const ws = new WebSocket(url(server, '/deny'))
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
    const bad = new WebSocket(url(server), [], { headers: { origin: 'https://evil.example' } })
    const err = (await errorEvent(bad)).error as HypersockError
    expect(err.code).toBe('ERR_WS_HANDSHAKE')
    expect(err.message).toContain('403')
    const good = new WebSocket(url(server), [], { headers: { origin: 'https://good.example' } })
    await once(good, 'open')
    const noOrigin = new WebSocket(url(server))
    await once(noOrigin, 'open')
    good.close()
    noOrigin.close()
  })

  it('refuses connections over maxConnections with 503', async () => {
    const server = track(await serveWebSocket({ maxConnections: 1 }))
    const first = new WebSocket(url(server))
    await once(first, 'open')
    const second = new WebSocket(url(server))
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
    const alive = new WS(url(server))
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
    const client = new WS(url(server))
    const gotPong = new Promise((r) => client.on('pong', (d) => r(d.toString())))
    await once(client, 'open')
    client.ping('from client')
    expect(await pinged.promise).toBe('from client')
    expect(await gotPong).toBe('from client')
    expect(await ponged.promise).toBe('from server')
    client.close()
  })
})

describe('large binary messages without copies', () => {
  /** `n` bytes whose values depend on `seed`, so that any shift or mix-up shows. */
  function pattern(n: number, seed: number): Buffer {
    const b = Buffer.alloc(n)
    for (let i = 0; i < n; i++) b[i] = (i * 7 + seed * 13) & 0xff
    return b
  }

  it('delivers messages that arrive together whole and in order, around control frames and text', async () => {
    const seen: string[] = []
    const server = track(
      await serveWebSocket({
        message(ws, data, isBinary) {
          seen.push(isBinary ? `bin:${data.length}` : `text:${data}`)
          ws.send(data)
        },
        ping: () => seen.push('ping'),
      }),
    )
    const sizes = [20 * 1024, 9 * 1024, 64 * 1024 + 3, 8 * 1024, 100]
    const sent = sizes.map((n, i) => pattern(n, i))
    const client = await RawClient.connect(server.port)
    expect(await client.handshake()).toMatch(/^HTTP\/1.1 101/)
    // One write, so that several messages reach the server in one read.
    client.send(
      Buffer.concat([
        frame(2, sent[0]),
        frame(2, sent[1]),
        frame(9, 'p'),
        frame(2, sent[2]),
        frame(1, 'between'),
        frame(2, sent[3]),
        frame(2, sent[4]),
      ]),
    )
    // A large frame in pieces: the server waits for all of it, then passes it on whole.
    const big = pattern(200 * 1024, 9)
    const bigFrame = frame(2, big)
    for (let at = 0; at < bigFrame.length; at += 50_000) {
      client.send(bigFrame.subarray(at, at + 50_000))
      await new Promise((r) => setImmediate(r))
    }
    const expected: Array<[number, Buffer]> = [
      [2, sent[0] as Buffer],
      [2, sent[1] as Buffer],
      [2, sent[2] as Buffer],
      [1, Buffer.from('between')],
      [2, sent[3] as Buffer],
      [2, sent[4] as Buffer],
      [2, big],
    ]
    let pongs = 0
    for (const [opcode, payload] of expected) {
      let f = await client.next()
      // The pong goes out as soon as the ping is read, ahead of echoes that wait for JS.
      while (f?.opcode === 10) {
        expect(f.payload.toString()).toBe('p')
        pongs++
        f = await client.next()
      }
      expect(f?.opcode).toBe(opcode)
      expect(f?.payload.equals(payload)).toBe(true)
    }
    expect(pongs).toBe(1)
    expect(seen).toEqual([
      'bin:20480',
      'bin:9216',
      'ping',
      'bin:65539',
      'text:between',
      'bin:8192',
      'bin:100',
      'bin:204800',
    ])
    client.destroy()
  })

  it('keeps held buffers intact, and sends a changed or partial buffer as it is at send time', async () => {
    const kept: Buffer[] = []
    const server = track(
      await serveWebSocket({
        message(ws, data) {
          const buf = data as Buffer
          kept.push(buf)
          if (kept.length === 1) {
            buf[0] = 0xab
            ws.send(buf)
          } else if (kept.length === 2) ws.send(buf.subarray(1000, 9000))
          else ws.send(buf)
        },
      }),
    )
    const count = 40
    const client = new WS(url(server))
    const echoes: Buffer[] = []
    const all = deferred<void>()
    client.on('message', (d: Buffer) => {
      echoes.push(d)
      if (echoes.length === count) all.resolve()
    })
    await once(client, 'open')
    for (let i = 0; i < count; i++) client.send(pattern(32 * 1024, i))
    await all.promise
    const first = pattern(32 * 1024, 0)
    first[0] = 0xab
    expect(echoes[0]?.equals(first)).toBe(true)
    expect(echoes[1]?.equals(pattern(32 * 1024, 1).subarray(1000, 9000))).toBe(true)
    for (let i = 2; i < count; i++) expect(echoes[i]?.equals(pattern(32 * 1024, i))).toBe(true)
    // Every buffer the handler kept still holds what it received, after all the later traffic.
    expect(kept.length).toBe(count)
    expect(kept[0]?.equals(first)).toBe(true)
    for (let i = 1; i < count; i++) expect(kept[i]?.equals(pattern(32 * 1024, i))).toBe(true)
    client.close()
  })
})

describe('backpressure', () => {
  it('send returns false over highWaterMark and drain follows once written', async () => {
    const drained = deferred<number>()
    const results: boolean[] = []
    const server = track(
      await serveWebSocket({
        highWaterMark: 64 * 1024,
        open(ws) {
          results.push(ws.send(Buffer.alloc(1024, 1)))
          // One message over the mark: backpressure is reported whatever the write speed.
          results.push(ws.send(Buffer.alloc(256 * 1024, 1)))
        },
        drain: (ws) => drained.resolve(ws.bufferedAmount),
      }),
    )
    const client = new WS(url(server))
    let received = 0
    client.on('message', (d: Buffer) => {
      received += d.length
    })
    expect(await drained.promise).toBe(0)
    expect(results).toEqual([true, false])
    while (received < 257 * 1024) await new Promise((r) => setTimeout(r, 10))
    client.close()
  })

  it('drops a consumer that never reads with 1008 once over maxBackpressure', async () => {
    const closed = deferred<{ code: number; reason: string }>()
    const server = track(
      await serveWebSocket({
        maxBackpressure: 1024 * 1024,
        open(ws) {
          const chunk = Buffer.alloc(64 * 1024, 2)
          const pump = () => {
            if (ws.readyState !== 1) return
            for (let i = 0; i < 16; i++) ws.send(chunk)
            setImmediate(pump)
          }
          pump()
        },
        close: (_ws, code, reason) => closed.resolve({ code, reason }),
      }),
    )
    // Completes the handshake, then never reads again.
    const raw = await RawClient.connect(server.port)
    await raw.handshake()
    raw.socket.pause()
    const { code, reason } = await closed.promise
    expect(code).toBe(1008)
    expect(reason).toContain('backpressure')
    raw.destroy()
  })
})

describe('pre-framed messages', () => {
  it('sends one prepared message to many sockets, with and without compression', async () => {
    const sockets: ServerWebSocket[] = []
    const server = track(
      await serveWebSocket({
        compression: { threshold: 16 },
        open: (ws) => sockets.push(ws),
      }),
    )
    const plain = new WS(url(server), { perMessageDeflate: false })
    const deflated = new WS(url(server), { perMessageDeflate: true })
    const ours = new WebSocket(url(server))
    await Promise.all([once(plain, 'open'), once(deflated, 'open'), once(ours, 'open')])
    while (sockets.length < 3) await new Promise((r) => setTimeout(r, 5))
    expect(ours.extensions).toContain('permessage-deflate')
    const text = 'broadcast '.repeat(100)
    const msg = prepare(text)
    expect([msg.length, msg.isText]).toEqual([text.length, true])
    const bin = prepare(Buffer.from([1, 2, 3]))
    const got = Promise.all([
      once(plain, 'message').then(([d]) => String(d)),
      once(deflated, 'message').then(([d]) => String(d)),
      nextMessage(ours),
    ])
    for (const ws of sockets) expect(ws.sendPrepared(msg)).toBe(true)
    expect(await got).toEqual([text, text, text])
    const got2 = Promise.all([once(plain, 'message'), once(deflated, 'message')])
    // A plain message after a prepared compressed one must still inflate (context reset).
    for (const ws of sockets) {
      ws.sendPrepared(bin)
      ws.send(text)
    }
    const [[a], [b]] = await got2
    expect([...(a as Buffer)]).toEqual([1, 2, 3])
    expect([...(b as Buffer)]).toEqual([1, 2, 3])
    expect(String((await once(deflated, 'message'))[0])).toBe(text)
    plain.close()
    deflated.close()
    ours.close()
  })
})

describe('permessage-deflate interop with ws', () => {
  const big = JSON.stringify(Array.from({ length: 2000 }, (_, i) => ({ i, name: `item ${i}` })))

  it('ws client -> hypersock server, with and without compression', async () => {
    const server = track(await serveWebSocket({ compression: true, message: (ws, d) => ws.send(d) }))
    for (const perMessageDeflate of [true, false]) {
      const client = new WS(url(server), { perMessageDeflate })
      await once(client, 'open')
      expect(client.extensions.includes('permessage-deflate')).toBe(perMessageDeflate)
      for (const msg of [big, 'small', big]) {
        client.send(msg)
        const [data, isBinary] = await once(client, 'message')
        expect([String(data), isBinary]).toEqual([msg, false])
      }
      client.send(Buffer.from(big))
      const [bin, isBin] = await once(client, 'message')
      expect([(bin as Buffer).equals(Buffer.from(big)), isBin]).toEqual([true, true])
      client.close(1000)
      await once(client, 'close')
    }
  })

  it('hypersock client -> ws server, with and without compression, with negotiated parameters', async () => {
    for (const perMessageDeflate of [
      { threshold: 0, serverNoContextTakeover: true, clientMaxWindowBits: 10 },
      false,
    ] as const) {
      const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate })
      await once(wss, 'listening')
      wss.on('connection', (sock) => sock.on('message', (d, isBinary) => sock.send(d, { binary: isBinary })))
      try {
        const port = (wss.address() as net.AddressInfo).port
        const ws = new WebSocket(`ws://127.0.0.1:${port}/`)
        await once(ws, 'open')
        if (perMessageDeflate) {
          expect(ws.extensions).toContain('permessage-deflate')
          expect(ws.extensions).toContain('server_no_context_takeover')
          expect(ws.extensions).toContain('client_max_window_bits=10')
        } else expect(ws.extensions).toBe('')
        for (const msg of [big, 'x', big]) {
          ws.send(msg)
          expect(await nextMessage(ws)).toBe(msg)
        }
        ws.close()
        await closeEvent(ws)
      } finally {
        wss.close()
      }
    }
  })

  it('hypersock client <-> hypersock server with compression negotiated', async () => {
    const server = track(
      await serveWebSocket({
        compression: { serverMaxWindowBits: 9, clientNoContextTakeover: true },
        message: (ws, d) => ws.send(d),
      }),
    )
    const ws = new WebSocket(url(server))
    await once(ws, 'open')
    expect(ws.extensions).toBe('permessage-deflate; client_no_context_takeover; server_max_window_bits=9')
    for (const msg of [big, big.slice(10), 'tiny']) {
      ws.send(msg)
      expect(await nextMessage(ws)).toBe(msg)
    }
    ws.close()
    await closeEvent(ws)
  })

  it('closes with 1009 when a compressed message inflates over maxMessageSize', async () => {
    const closed = deferred<number>()
    const server = track(
      await serveWebSocket({ compression: true, maxMessageSize: 10_000, close: (_ws, c) => closed.resolve(c) }),
    )
    const client = new WS(url(server), { perMessageDeflate: { threshold: 0 } })
    await once(client, 'open')
    // 100 kB of zeros compresses to a few hundred bytes on the wire.
    client.send(Buffer.alloc(100_000))
    const [code] = await once(client, 'close')
    expect(code).toBe(1009)
    expect(await closed.promise).toBe(1009)
  })
})

describe('standalone server and client dial options', () => {
  it('serveWebSocket answers plain HTTP with 426 and echoes over IPv6', async () => {
    const server = track(await serveWebSocket({ hostname: '::1', message: (ws, d) => ws.send(d) }))
    const res = await rawExchangeV6(server.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    expect(res).toMatch(/^HTTP\/1\.1 426/)
    const ws = new WebSocket(`ws://[::1]:${server.port}/`)
    await once(ws, 'open')
    ws.send('v6')
    expect(await nextMessage(ws)).toBe('v6')
    ws.close()
    await closeEvent(ws)
  })

  it('times out a handshake the server never answers with ETIMEDOUT', async () => {
    const silent = net.createServer(() => {})
    silent.listen(0, '127.0.0.1')
    await once(silent, 'listening')
    try {
      const port = (silent.address() as net.AddressInfo).port
      const ws = new WebSocket(`ws://127.0.0.1:${port}/`, [], { handshakeTimeout: 200 })
      const [error, close] = [errorEvent(ws), closeEvent(ws)]
      expect(((await error).error as HypersockError).code).toBe('ETIMEDOUT')
      expect((await close).code).toBe(1006)
    } finally {
      silent.close()
    }
  })

  it('offers no extension when compression is off', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: true })
    await once(wss, 'listening')
    try {
      const port = (wss.address() as net.AddressInfo).port
      // With compression off the client offers nothing, and ws accepts nothing: a clean open.
      const ws = new WebSocket(`ws://127.0.0.1:${port}/`, [], { compression: false })
      await once(ws, 'open')
      expect(ws.extensions).toBe('')
      ws.close()
      await closeEvent(ws)
    } finally {
      wss.close()
    }
  })
})

async function rawExchangeV6(port: number, data: string): Promise<string> {
  const socket = net.connect(port, '::1')
  await once(socket, 'connect')
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => {
    chunks.push(c)
    if (Buffer.concat(chunks).toString('latin1').includes('WebSocket\n')) socket.destroy()
  })
  socket.write(data)
  await once(socket, 'close')
  return Buffer.concat(chunks).toString('latin1')
}

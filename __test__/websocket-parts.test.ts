// Messages sent in parts (`send(data, { fin: false })`, `stream()`), per-message compression,
// write completion (`send` callbacks, `sendAsync`) and heartbeat times, on the server and the
// client, checked frame by frame with a raw peer and end to end with `ws` and Python `websockets`.
import { execFile, spawn } from 'node:child_process'
import { createHash } from 'node:crypto'
import { once } from 'node:events'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { constants, inflateRawSync } from 'node:zlib'
import { type ServerWebSocket, serve, serveWebSocket, WebSocket } from 'hypersock'
import { describe, expect, it } from 'vitest'
import WS, { WebSocketServer } from 'ws'
import { caught, closeEvent, deferred, nextMessage, trackServers, wsUrl } from './helpers.js'
import { type Frame, RawClient } from './ws-raw.js'

const track = trackServers()
const peers = fileURLToPath(new URL('./peers/', import.meta.url))
const python = '/usr/bin/python3'

const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex')

/** A server whose `open` hands each socket to the test. */
async function socketServer(options: Record<string, unknown> = {}) {
  const opened: ServerWebSocket[] = []
  const waiting: Array<(ws: ServerWebSocket) => void> = []
  const server = track(
    await serveWebSocket({
      ...options,
      open: (ws) => {
        const w = waiting.shift()
        if (w) w(ws)
        else opened.push(ws)
      },
    }),
  )
  const next = () =>
    new Promise<ServerWebSocket>((resolve) => {
      const ws = opened.shift()
      if (ws) resolve(ws)
      else waiting.push(resolve)
    })
  return { server, next }
}

async function frames(raw: RawClient, n: number): Promise<Frame[]> {
  const out: Frame[] = []
  while (out.length < n) {
    const f = await raw.next()
    if (!f) break
    out.push(f)
  }
  return out
}

describe('messages in parts from the server', () => {
  it('frames each part as it is sent; other messages wait for the open one, pings do not', async () => {
    const { server, next } = await socketServer()
    const raw = await RawClient.connect(server.port)
    expect(await raw.handshake()).toContain('101')
    const ws = await next()
    server.hub.join(ws, 'room')
    expect(ws.send('Hel', { fin: false })).toBe(true)
    // A Hub broadcast while the message is open follows it.
    server.hub.publish('room', 'broadcast')
    // Sends of the socket itself continue the open message until one ends it (as in `ws`).
    ws.send(Buffer.from('whole'), { compress: false, fin: false })
    // A ping goes out between its frames.
    ws.ping('p')
    ws.send('lo', { fin: false })
    ws.send(' world')
    ws.send('after')
    const got = await frames(raw, 7)
    expect(got.map((f) => [f.opcode, f.fin, f.payload.toString()])).toEqual([
      [1, false, 'Hel'],
      [0, false, 'whole'],
      [9, true, 'p'],
      [0, false, 'lo'],
      [0, true, ' world'],
      [1, true, 'broadcast'],
      [1, true, 'after'],
    ])
    raw.destroy()
  })

  it('a stream() message is sent as it is written; sends meanwhile are whole messages after it', async () => {
    const { server, next } = await socketServer()
    const raw = await RawClient.connect(server.port)
    await raw.handshake()
    const ws = await next()
    const stream = ws.stream({ binary: false })
    const writer = stream.getWriter()
    await writer.write('part one ')
    // The first frame is on the wire before the message ends.
    const [first] = await frames(raw, 1)
    expect([first?.opcode, first?.fin, first?.payload.toString()]).toEqual([1, false, 'part one '])
    ws.send('queued meanwhile')
    expect(() => ws.stream()).toThrow(/still open/)
    expect((await caught(() => ws.send('x', { fin: false }))).code).toBe('ERR_INVALID_STATE')
    await writer.write(Buffer.from('part two'))
    await writer.close()
    const rest = await frames(raw, 3)
    expect(rest.map((f) => [f.opcode, f.fin, f.payload.toString()])).toEqual([
      [0, false, 'part two'],
      [0, true, ''],
      [1, true, 'queued meanwhile'],
    ])
    // The socket takes a new stream once the last one closed.
    const again = ws.stream().getWriter()
    await again.write(new Uint8Array([1, 2]))
    await again.close()
    const last = await frames(raw, 2)
    expect(last.map((f) => [f.opcode, f.fin, [...f.payload]])).toEqual([
      [2, false, [1, 2]],
      [0, true, []],
    ])
    raw.destroy()
  })

  it('compresses a message in parts as one deflate stream, RSV1 on its first frame only', async () => {
    const { server, next } = await socketServer({ compression: true })
    const raw = await RawClient.connect(server.port)
    const head = await raw.handshake('/', ['Sec-WebSocket-Extensions: permessage-deflate'])
    expect(head).toContain('permessage-deflate')
    const ws = await next()
    const parts = ['a'.repeat(3000), 'b'.repeat(3000), 'c'.repeat(10)]
    ws.send(parts[0] as string, { fin: false })
    ws.send(parts[1] as string, { fin: false })
    ws.send(parts[2] as string)
    const got = await frames(raw, 3)
    expect(got.map((f) => [f.opcode, f.fin, f.rsv])).toEqual([
      [1, false, 4],
      [0, false, 0],
      [0, true, 0],
    ])
    const body = Buffer.concat([...got.map((f) => f.payload), Buffer.from([0, 0, 0xff, 0xff])])
    expect(inflateRawSync(body, { finishFlush: constants.Z_SYNC_FLUSH }).toString()).toBe(parts.join(''))
    raw.destroy()
  })

  it('compress: false sends a large message plain, compress: true compresses a small one', async () => {
    const { server, next } = await socketServer({ compression: true })
    const raw = await RawClient.connect(server.port)
    await raw.handshake('/', ['Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover'])
    const ws = await next()
    ws.send('z'.repeat(5000), { compress: false })
    ws.send('tiny', { compress: true })
    ws.send('tiny')
    const got = await frames(raw, 3)
    expect(got.map((f) => f.rsv)).toEqual([0, 4, 0])
    expect(got[0]?.payload.toString()).toBe('z'.repeat(5000))
    const tiny = got[1]?.payload as Buffer
    expect(
      inflateRawSync(Buffer.concat([tiny, Buffer.from([0, 0, 0xff, 0xff])]), {
        finishFlush: constants.Z_SYNC_FLUSH,
      }).toString(),
    ).toBe('tiny')
    raw.destroy()
  })

  it('an empty message forced through the compressor keeps the deflate stream in step', async () => {
    const server = track(
      await serveWebSocket({
        compression: true,
        open: (ws) => {
          ws.send('first', { compress: true })
          ws.send('', { compress: true })
          ws.send('', { compress: true })
          ws.send('x', { fin: false, compress: true })
          ws.send('')
          ws.send('last', { compress: true })
          ws.close(4000)
        },
      }),
    )
    const client = new WS(wsUrl(server), { perMessageDeflate: true })
    const got: string[] = []
    client.on('message', (data) => got.push(String(data)))
    const [code] = (await once(client, 'close')) as [number]
    expect(code).toBe(4000)
    expect(got).toEqual(['first', '', '', 'x', 'last'])
  })

  it('ws and Python websockets reassemble compressed and plain messages in parts', async () => {
    const big = Buffer.alloc(3 << 20)
    for (let i = 0; i < big.length; i++) big[i] = (i * 7) % 251
    const server = track(
      await serveWebSocket({
        compression: true,
        highWaterMark: 64 << 10,
        open: async (ws) => {
          // Binary through stream() with backpressure, text in parts with send, then close.
          const writer = ws.stream().getWriter()
          for (let at = 0; at < big.length; at += 100_000) await writer.write(big.subarray(at, at + 100_000))
          await writer.close()
          ws.send('text ', { fin: false })
          ws.send('in ', { fin: false, compress: true })
          ws.send('parts é')
          ws.close(4000, 'done')
        },
      }),
    )
    // ws, with and without permessage-deflate.
    for (const perMessageDeflate of [true, false]) {
      const client = new WS(wsUrl(server), { perMessageDeflate })
      const got: Array<Buffer | string> = []
      client.on('message', (data, isBinary) => got.push(isBinary ? (data as Buffer) : String(data)))
      const [code] = (await once(client, 'close')) as [number]
      expect(code).toBe(4000)
      expect(got.length).toBe(2)
      expect(sha(got[0] as Buffer)).toBe(sha(big))
      expect(got[1]).toBe('text in parts é')
    }
    for (const mode of ['deflate', 'plain']) {
      const out = await new Promise<string>((resolve, reject) =>
        execFile(python, [join(peers, 'py_ws_recv.py'), wsUrl(server), mode], (err, stdout) =>
          err ? reject(err) : resolve(stdout),
        ),
      )
      const seen = JSON.parse(out)
      expect(seen.close).toBe(4000)
      expect(seen.messages).toEqual([
        { text: false, length: big.length, sha256: sha(big) },
        { text: true, length: Buffer.byteLength('text in parts é'), sha256: sha('text in parts é') },
      ])
    }
  })

  it('aborting a stream closes the connection with 1011; a receiver never takes the cut-off message', async () => {
    const closed = deferred<number>()
    const server = track(
      await serveWebSocket({
        open: async (ws) => {
          const writer = ws.stream().getWriter()
          await writer.write('half of it')
          await writer.abort(new Error('source failed'))
        },
      }),
    )
    const client = new WS(wsUrl(server))
    const messages: unknown[] = []
    client.on('message', (m) => messages.push(m))
    client.on('close', (code) => closed.resolve(code))
    expect(await closed.promise).toBe(1011)
    expect(messages).toEqual([])
  })
})

describe('messages in parts meet other sends', () => {
  it('a stream write under backpressure waits for its own frame, not for messages held behind it', async () => {
    const { server, next } = await socketServer({ highWaterMark: 64 << 10 })
    const client = new WS(wsUrl(server))
    const got: string[] = []
    client.on('message', (d) => got.push(String(d).slice(0, 12)))
    await once(client, 'open')
    const ws = await next()
    const writer = ws.stream({ binary: false }).getWriter()
    await writer.write('stream-1 ')
    // A whole message over the high-water mark waits behind the open message...
    ws.send(`held:${'h'.repeat(200_000)}`)
    // ...and a send with options is a message of its own too: it waits as well.
    ws.send('other', { compress: false })
    // These writes find the queue over the mark; they must still settle.
    await writer.write('stream-2 ')
    await writer.write('stream-3')
    await writer.close()
    while (got.length < 3) await new Promise((r) => setTimeout(r, 5))
    expect(got).toEqual(['stream-1 str', 'held:hhhhhhh', 'other'])
    client.close()
  })

  it('the client keeps Blob sends in order with the sends around them, parts included', async () => {
    const got: string[] = []
    const server = track(await serveWebSocket({ message: (_ws, data) => got.push(String(data)) }))
    const client = new WebSocket(wsUrl(server))
    await once(client, 'open')
    client.send('one')
    client.send(new Blob(['two']))
    client.send('three')
    client.send(new Blob(['fo']), { fin: false })
    client.send('ur')
    await client.sendAsync('five')
    expect(got).toEqual(['one', 'two', 'three', 'four', 'five'])
    client.close()
    await closeEvent(client)
  })

  it('a close goes out within closeTimeout even when the peer reads nothing and much is queued', async () => {
    const { server, next } = await socketServer({ closeTimeout: 300, maxBackpressure: 256 << 20 })
    const raw = await RawClient.connect(server.port)
    await raw.handshake()
    raw.socket.pause()
    const ws = await next()
    const results: Array<string | undefined> = []
    for (let i = 0; i < 64; i++) {
      ws.send(Buffer.alloc(256 << 10), (err) => results.push((err as { code?: string } | undefined)?.code))
    }
    const ended = new Promise<void>((resolve) => {
      const poll = setInterval(() => {
        if (ws.readyState === 3 && results.length === 64) {
          clearInterval(poll)
          resolve()
        }
      }, 10)
    })
    ws.close(1000, 'bye')
    await ended
    // What the kernel took was written; the rest failed with the connection.
    expect(results.filter((c) => c === 'ERR_WS_CLOSED').length).toBeGreaterThan(0)
    expect(results.every((c) => c === undefined || c === 'ERR_WS_CLOSED')).toBe(true)
    raw.destroy()
  })
})

describe('messages in parts from the client', () => {
  it('Python websockets and ws servers receive the whole message, compressed or not', async () => {
    const py = spawn(python, [join(peers, 'py_ws_server.py')])
    try {
      const [line] = (await once(py.stdout, 'data')) as [Buffer]
      const port = Number(String(line).trim())
      for (const compression of [true, false]) {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/`, [], { compression })
        ws.binaryType = 'nodebuffer'
        await once(ws, 'open')
        let echoed = nextMessage(ws)
        ws.send('one ', { fin: false })
        ws.send('two ', { fin: false, compress: false })
        ws.send('three')
        expect(await echoed).toBe('one two three')
        echoed = nextMessage(ws)
        const writer = ws.stream().getWriter()
        const chunk = Buffer.alloc(200_000, 0x41)
        for (let i = 0; i < 5; i++) await writer.write(chunk)
        await writer.close()
        expect(sha((await echoed) as Buffer)).toBe(sha(Buffer.concat(Array(5).fill(chunk))))
        ws.close()
        await closeEvent(ws)
      }
    } finally {
      py.kill()
    }

    const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: true })
    await once(wss, 'listening')
    try {
      const got = deferred<[string, boolean]>()
      wss.on('connection', (c) => c.on('message', (d, isBinary) => got.resolve([String(d), isBinary])))
      const port = (wss.address() as { port: number }).port
      const ws = new WebSocket(`ws://127.0.0.1:${port}/`)
      await once(ws, 'open')
      expect(ws.extensions).toContain('permessage-deflate')
      ws.send(Buffer.from('bin-'), { fin: false, compress: true })
      ws.send('ary')
      expect(await got.promise).toEqual(['bin-ary', true])
      ws.close()
      await closeEvent(ws)
    } finally {
      wss.close()
    }
  })
})

describe('write completion', () => {
  it('callbacks and sendAsync settle in order once written; both sides', async () => {
    const { server, next } = await socketServer()
    const client = new WebSocket(wsUrl(server))
    client.binaryType = 'nodebuffer'
    await once(client, 'open')
    const ws = await next()
    const order: string[] = []
    ws.send('a', () => order.push('a'))
    ws.send(Buffer.alloc(1 << 20), {}, (err) => order.push(err ? 'error' : 'big'))
    await ws.sendAsync('c')
    order.push('c')
    expect(order).toEqual(['a', 'big', 'c'])
    // The client's side.
    const seen: string[] = []
    await client.sendAsync('from client')
    client.send('second', (err) => seen.push(err ? 'error' : 'second'))
    await client.sendAsync('third')
    expect(seen).toEqual(['second'])
    client.close()
    await closeEvent(client)
  })

  it('rejects with ERR_WS_CLOSED when the connection ends before the message is written', async () => {
    const { server, next } = await socketServer({ maxBackpressure: 256 << 20 })
    const raw = await RawClient.connect(server.port)
    await raw.handshake()
    // The peer reads nothing more: 32 MiB cannot all fit in the socket buffers.
    raw.socket.pause()
    const ws = await next()
    const pending = ws.sendAsync(Buffer.alloc(32 << 20))
    const callback = deferred<Error | undefined>()
    ws.send('behind it', (err) => callback.resolve(err))
    ws.terminate()
    const err = await pending.then(
      () => null,
      (e: { code?: string }) => e,
    )
    expect(err?.code).toBe('ERR_WS_CLOSED')
    expect(((await callback.promise) as { code?: string } | undefined)?.code).toBe('ERR_WS_CLOSED')
    // After the close, a send with a callback fails the same way, at once.
    const late = await ws.sendAsync('late').catch((e: { code?: string }) => e.code)
    expect(late).toBe('ERR_WS_CLOSED')
    raw.destroy()
  })
})

describe('heartbeat times', () => {
  it('lastPingAt, lastPongAt and roundTripTime on server sockets, also through hub.get', async () => {
    const ponged = deferred<ServerWebSocket>()
    const server = track(
      await serve({
        fetch: () => new Response('no'),
        websocket: {
          pingInterval: 50,
          open: (ws) => {
            expect(ws.lastPingAt).toBeUndefined()
            expect(ws.lastPongAt).toBeUndefined()
            expect(ws.roundTripTime).toBeUndefined()
          },
          pong: (ws) => ponged.resolve(ws),
        },
      }),
    )
    const before = Date.now()
    const client = new WS(wsUrl(server))
    const ws = await ponged.promise
    const after = Date.now()
    const ping = ws.lastPingAt as number
    const pong = ws.lastPongAt as number
    expect(ping).toBeGreaterThanOrEqual(before - 1)
    expect(pong).toBeGreaterThanOrEqual(ping)
    expect(pong).toBeLessThanOrEqual(after + 1)
    expect(ws.roundTripTime).toBeCloseTo(pong - ping, 3)
    const viaHub = server.hub.get(ws.id)
    expect(viaHub?.lastPongAt).toBe(pong)
    client.close()
    await once(client, 'close')
  })

  it('the client records its own pings and the pongs that answer them', async () => {
    const { server } = await socketServer()
    const ws = new WebSocket(wsUrl(server))
    await once(ws, 'open')
    expect(ws.lastPingAt).toBeUndefined()
    const pong = once(ws, 'pong')
    ws.ping('hb')
    await pong
    expect(ws.lastPingAt).toBeGreaterThan(0)
    expect(ws.lastPongAt).toBeGreaterThanOrEqual(ws.lastPingAt as number)
    expect(ws.roundTripTime).toBeGreaterThanOrEqual(0)
    ws.close()
    await closeEvent(ws)
  })
})

describe('send options are checked', () => {
  it('throws on an unknown key with a suggestion', async () => {
    const { server, next } = await socketServer()
    const client = new WebSocket(wsUrl(server))
    await once(client, 'open')
    const ws = await next()
    const err = await caught(() => ws.send('x', { compres: true } as never))
    expect(err.code).toBe('ERR_INVALID_ARG_VALUE')
    expect(err.message).toMatch(/compress/)
    expect((await caught(() => client.send('x', { finn: false } as never))).message).toMatch(/fin/)
    client.close()
    await closeEvent(client)
  })
})

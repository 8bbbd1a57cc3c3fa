// WebSocket messages and flow: large binary messages without copies, backpressure, pre-framed messages.
import { once } from 'node:events'
import { prepare, type ServerWebSocket, serveWebSocket, WebSocket } from 'hypersock'
import { describe, expect, it } from 'vitest'
import WS from 'ws'
import { deferred, nextMessage, trackServers, wsUrl } from './helpers.js'
import { frame, RawClient } from './ws-raw.js'

const track = trackServers()

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
    const client = new WS(wsUrl(server))
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
    const client = new WS(wsUrl(server))
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
    const plain = new WS(wsUrl(server), { perMessageDeflate: false })
    const deflated = new WS(wsUrl(server), { perMessageDeflate: true })
    const ours = new WebSocket(wsUrl(server))
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

import { once } from 'node:events'
import net from 'node:net'
import { type Server, serve } from 'hypersock'
import { describe, expect, it } from 'vitest'
import { deferred, nodeRequest, rawExchange, trackServers } from './helpers.js'

const track = trackServers()

async function start(options: Parameters<typeof serve>[0]): Promise<Server> {
  return track(await serve(options))
}

describe('serve: limits and timeouts', () => {
  it('answers 431 to a head over maxHeaderSize or with too many fields', async () => {
    const server = await start({ maxHeaderSize: 8192, maxHeaders: 10, fetch: () => 'ok' })
    const big = await rawExchange(server.port, `GET / HTTP/1.1\r\nHost: x\r\nX-Big: ${'a'.repeat(20_000)}\r\n\r\n`)
    expect(big).toMatch(/^HTTP\/1\.1 431/)
    const many = Array.from({ length: 20 }, (_, i) => `X-H${i}: v\r\n`).join('')
    expect(await rawExchange(server.port, `GET / HTTP/1.1\r\nHost: x\r\n${many}\r\n`)).toMatch(/^HTTP\/1\.1 431/)
    expect(await (await fetch(server.url)).text()).toBe('ok')
  })

  it('answers 408 when the body does not arrive within requestTimeout', async () => {
    const server = await start({ requestTimeout: 200, fetch: async (req) => `${(await req.bytes()).length}` })
    const reply = await rawExchange(server.port, 'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\nabc', 10_000)
    expect(reply).toMatch(/^HTTP\/1\.1 408/)
    const streamed = await rawExchange(
      server.port,
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n3\r\nabc\r\n',
      10_000,
    )
    expect(streamed).toMatch(/^HTTP\/1\.1 408/)
  })

  it('cuts slowloris clients at headerReadTimeout while serving a normal client', async () => {
    const server = await start({ headerReadTimeout: 300, fetch: () => 'served' })
    const slow: net.Socket[] = []
    for (let i = 0; i < 200; i++) {
      const s = net.connect(server.port, '127.0.0.1')
      s.on('error', () => {})
      s.write('GET / HTTP/1.1\r\nHost: x\r\n')
      slow.push(s)
    }
    const drip = setInterval(() => {
      for (const s of slow) if (!s.destroyed) s.write('X-Drip: 1\r\n')
    }, 50)
    try {
      expect(await (await fetch(server.url)).text()).toBe('served')
      await Promise.all(slow.map((s) => (s.closed ? null : once(s, 'close'))))
      expect(slow.every((s) => s.closed)).toBe(true)
    } finally {
      clearInterval(drip)
      for (const s of slow) s.destroy()
    }
  })

  it('closes idle keep-alive connections after idleTimeout', async () => {
    const server = await start({ idleTimeout: 200, fetch: () => 'ok' })
    const socket = net.connect(server.port, '127.0.0.1')
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    const [first] = (await once(socket, 'data')) as [Buffer]
    expect(first.toString()).toMatch(/^HTTP\/1\.1 200/)
    await once(socket, 'close')
    expect(server.stats().timeouts).toBeGreaterThanOrEqual(1)
  })

  it('holds connections beyond maxConnections until one closes', async () => {
    const server = await start({ maxConnections: 2, fetch: () => 'ok' })
    const held = [net.connect(server.port, '127.0.0.1'), net.connect(server.port, '127.0.0.1')]
    await Promise.all(held.map((s) => once(s, 'connect')))
    while (server.stats().connectionsOpen < 2) await new Promise((r) => setTimeout(r, 10))
    let answered = false
    const third = nodeRequest(server.url, { agent: false }).then((r) => {
      answered = true
      return r
    })
    await new Promise((r) => setTimeout(r, 100))
    expect(answered).toBe(false)
    expect(server.stats().connectionsOpen).toBe(2)
    held[0]?.destroy()
    expect((await third).status).toBe(200)
    held[1]?.destroy()
  })

  it('queues requests beyond maxConcurrentRequests and answers 503 past maxQueuedRequests', async () => {
    const release = deferred<void>()
    let entered = 0
    const server = await start({
      maxConcurrentRequests: 1,
      maxQueuedRequests: 1,
      async fetch() {
        entered++
        await release.promise
        return 'done'
      },
    })
    const first = nodeRequest(server.url, { agent: false })
    while (entered < 1) await new Promise((r) => setTimeout(r, 5))
    const second = nodeRequest(server.url, { agent: false })
    while (server.stats().requestsInFlight < 2) await new Promise((r) => setTimeout(r, 5))
    const third = await nodeRequest(server.url, { agent: false })
    expect(third.status).toBe(503)
    expect(third.headers['retry-after']).toBe('1')
    expect(entered).toBe(1)
    release.resolve()
    expect((await first).status).toBe(200)
    expect((await second).status).toBe(200)
    expect(server.stats().rejectedOverload).toBe(1)
  })
})

describe('serve: robustness against smuggling and bad framing', () => {
  it('rejects conflicting Content-Length, unknown transfer codings, missing Host and bad chunks', async () => {
    const paths: string[] = []
    const server = await start({
      async fetch(req) {
        paths.push(req.path)
        return `got ${(await req.text()).length}`
      },
      error: () => {},
    })
    const x = (s: string) => rawExchange(server.port, s)
    expect(await x('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\nContent-Length: 5\r\n\r\nabcde')).toMatch(
      /^HTTP\/1\.1 400/,
    )
    expect(await x('POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n')).toMatch(
      /^HTTP\/1\.1 501/,
    )
    expect(await x('GET / HTTP/1.1\r\n\r\n')).toMatch(/^HTTP\/1\.1 400/)
    expect(await x('GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n')).toMatch(/^HTTP\/1\.1 400/)
    expect(await x('POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\nabc\r\n0\r\n\r\n')).toMatch(
      /^HTTP\/1\.1 400/,
    )
    expect(await x('GET / HTTP/1.1\r\nHost: x\r\nX-Bad: a\u0001b\r\n\r\n')).toMatch(/^HTTP\/1\.1 400/)
    expect(await x('GET / HTTP/1.1\r\nHost: x\r\nX-A: b\r\n c\r\n\r\n')).toMatch(/^HTTP\/1\.1 400/)
    expect(paths.filter((p) => p !== '/')).toEqual([])
  })

  it('reads Content-Length + Transfer-Encoding as chunked and closes, so a smuggled request never runs', async () => {
    const paths: string[] = []
    const server = await start({
      async fetch(req) {
        paths.push(req.path)
        return `got ${(await req.text()).length}`
      },
    })
    const reply = await rawExchange(
      server.port,
      'POST /front HTTP/1.1\r\nHost: x\r\nContent-Length: 30\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\nGET /smuggled HTTP/1.1\r\nHost: x\r\n\r\n',
    )
    expect(reply).toMatch(/^HTTP\/1\.1 200/)
    expect(reply.toLowerCase()).toContain('connection: close')
    expect(paths).toEqual(['/front'])
  })
})

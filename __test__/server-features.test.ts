import { execFile } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync } from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { type AccessLogEntry, type Server, serve, sse } from 'hypersock'
import { describe, expect, it } from 'vitest'
import { deferred, rawExchange, trackServers } from './helpers.js'

const run = promisify(execFile)
const track = trackServers()

async function start(options: Parameters<typeof serve>[0]): Promise<Server> {
  return track(await serve(options))
}

/** Sends a request with node:http and returns status, headers and the body chunks as they came. */
function nodeRequest(
  url: URL | string,
  options: http.RequestOptions & { body?: Buffer | Buffer[] } = {},
): Promise<{ status: number; headers: http.IncomingHttpHeaders; chunks: Buffer[] }> {
  return new Promise((resolve, reject) => {
    const req = http.request(url, options, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, chunks }))
      res.on('error', reject)
    })
    req.on('error', reject)
    const body = options.body
    if (Array.isArray(body)) for (const part of body) req.write(part)
    else if (body) req.write(body)
    req.end()
  })
}

describe('serve: request helpers', () => {
  it('exposes path, query, host, cookies, JSON, urlencoded and multipart form data', async () => {
    const server = await start({
      async fetch(req) {
        if (req.path === '/json') return { body: JSON.stringify({ got: await req.json() }) }
        if (req.path === '/form') {
          const form = await req.formData()
          const file = form.get('file') as File | null
          return {
            body: JSON.stringify({ name: form.get('name'), file: file ? [file.name, await file.text()] : null }),
          }
        }
        return {
          body: JSON.stringify({
            path: req.path,
            q: req.query.getAll('q'),
            host: req.host,
            version: req.httpVersion,
            sid: req.cookies.get('sid'),
            theme: req.cookies.get('theme'),
          }),
        }
      },
    })
    const info = await (
      await fetch(new URL('/a/b?q=1&q=2', server.url), { headers: { cookie: 'sid=abc; theme="dark"' } })
    ).json()
    expect(info).toEqual({
      path: '/a/b',
      q: ['1', '2'],
      host: `127.0.0.1:${server.port}`,
      version: '1.1',
      sid: 'abc',
      theme: 'dark',
    })
    const json = await fetch(new URL('/json', server.url), { method: 'POST', body: '{"a":[1,2]}' })
    expect(await json.json()).toEqual({ got: { a: [1, 2] } })
    const urlencoded = await fetch(new URL('/form', server.url), {
      method: 'POST',
      body: new URLSearchParams({ name: 'ada lovelace' }),
    })
    expect(await urlencoded.json()).toEqual({ name: 'ada lovelace', file: null })
    const multipart = new FormData()
    multipart.set('name', 'grace')
    multipart.set('file', new Blob(['file body']), 'notes.txt')
    const mp = await fetch(new URL('/form', server.url), { method: 'POST', body: multipart })
    expect(await mp.json()).toEqual({ name: 'grace', file: ['notes.txt', 'file body'] })
  })
})

describe('serve: streaming bodies', () => {
  it('streams a large chunked request body to the handler as a ReadableStream', async () => {
    const server = await start({
      async fetch(req) {
        let total = 0
        let chunks = 0
        const reader = req.body!.getReader()
        for (;;) {
          const { done, value } = await reader.read()
          if (done) break
          total += value.byteLength
          chunks++
        }
        return { body: JSON.stringify({ total, streamed: chunks > 1 }) }
      },
    })
    const parts = Array.from({ length: 64 }, (_, i) => Buffer.alloc(16 * 1024, i))
    const res = await nodeRequest(server.url, { method: 'POST', body: parts })
    expect(JSON.parse(Buffer.concat(res.chunks).toString())).toEqual({ total: 64 * 16 * 1024, streamed: true })
  })

  it('flushes streamed response chunks as they are produced', async () => {
    const firstSeen = deferred<void>()
    const server = await start({
      fetch() {
        async function* body() {
          yield 'first;'
          // The second chunk is produced only once the client has the first one.
          await firstSeen.promise
          yield Buffer.from('second;')
          yield 'third'
        }
        return { headers: { 'content-type': 'text/plain' }, body: body() }
      },
    })
    const received: string[] = []
    await new Promise<void>((resolve, reject) => {
      http
        .get(server.url, (res) => {
          expect(res.headers['transfer-encoding']).toBe('chunked')
          res.on('data', (c: Buffer) => {
            received.push(c.toString())
            if (received.join('') === 'first;') firstSeen.resolve()
          })
          res.on('end', resolve)
        })
        .on('error', reject)
    })
    expect(received.join('')).toBe('first;second;third')
  })

  it('sends a global Response with a ReadableStream body', async () => {
    const server = await start({
      fetch() {
        const stream = new ReadableStream<Uint8Array>({
          start(c) {
            for (const part of ['a', 'b', 'c']) c.enqueue(new TextEncoder().encode(part))
            c.close()
          },
        })
        return new Response(stream, { status: 207 })
      },
    })
    const res = await fetch(server.url)
    expect([res.status, await res.text()]).toEqual([207, 'abc'])
  })

  it('serves Server-Sent Events that EventSource-style parsing reads back', async () => {
    const server = await start({
      fetch: () =>
        sse(
          (async function* () {
            yield { event: 'greeting', id: '1', data: 'hello\nworld' }
            yield { data: { n: 2 }, retry: 1000 }
            yield 'plain'
          })(),
        ),
    })
    const res = await fetch(server.url)
    expect(res.headers.get('content-type')).toBe('text/event-stream; charset=utf-8')
    expect(await res.text()).toBe(
      'event: greeting\nid: 1\ndata: hello\ndata: world\n\nretry: 1000\ndata: {"n":2}\n\ndata: plain\n\n',
    )
  })

  it('cuts the response when a streamed body throws (no clean end for the client)', async () => {
    const server = await start({
      fetch() {
        async function* body() {
          yield 'partial'
          throw new Error('producer failed')
        }
        return { body: body() }
      },
      error: () => {},
    })
    const err = await fetch(server.url)
      .then((r) => r.text())
      .catch((e: unknown) => e)
    expect(err).toBeInstanceOf(Error)
  })
})

describe('serve: HTTP/2', () => {
  it('serves h2c by prior knowledge, many streams on one connection', async () => {
    const ports = new Set<number>()
    const server = await start({
      fetch(req) {
        ports.add(req.remotePort)
        return { headers: { 'x-version': req.httpVersion }, body: `${req.method} ${req.path} ${req.host}` }
      },
    })
    const session = http2.connect(server.url.href)
    const one = (path: string) =>
      new Promise<{ status: number; version: string; body: string }>((resolve, reject) => {
        const stream = session.request({ ':path': path })
        let body = ''
        let status = 0
        let version = ''
        stream.on('response', (h) => {
          status = Number(h[':status'])
          version = String(h['x-version'])
        })
        stream.setEncoding('utf8')
        stream.on('data', (c: string) => {
          body += c
        })
        stream.on('end', () => resolve({ status, version, body }))
        stream.on('error', reject)
      })
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => one(`/s${i}`)))
    session.close()
    expect(results.every((r) => r.status === 200 && r.version === '2')).toBe(true)
    expect(results[7]?.body).toBe(`GET /s7 127.0.0.1:${server.port}`)
    expect(ports.size).toBe(1)
  })

  it('talks h2c to curl --http2-prior-knowledge', async () => {
    const server = await start({ fetch: (req) => `v${req.httpVersion}` })
    const { stdout } = await run('curl', ['-sS', '--http2-prior-knowledge', server.url.href])
    expect(stdout).toBe('v2')
  })

  it('answers an h2c Upgrade request over HTTP/1.1 (the mechanism RFC 9113 deprecates)', async () => {
    const server = await start({ fetch: (req) => `v${req.httpVersion}` })
    const { stdout } = await run('curl', ['-sS', '--http2', '-i', server.url.href])
    expect(stdout).toMatch(/^HTTP\/1\.1 200/)
    expect(stdout.endsWith('v1.1')).toBe(true)
  })

  it('refuses h2c when http2 is off', async () => {
    const server = await start({ http2: false, fetch: () => 'x' })
    const reply = await rawExchange(server.port, 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')
    // HTTP/1.1 alone: the preface is refused (closed, or a 4xx), never answered with SETTINGS.
    expect(reply === '' || reply.startsWith('HTTP/1.1 4')).toBe(true)
    expect((await fetch(server.url)).status).toBe(200)
  })
})

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

describe('serve: graceful shutdown', () => {
  it('lets every in-flight request finish and refuses new connections', async () => {
    const release = deferred<void>()
    let entered = 0
    const server = await serve({
      async fetch(req) {
        entered++
        await release.promise
        return `done ${req.path}`
      },
    })
    const inFlight = Array.from({ length: 20 }, (_, i) => nodeRequest(new URL(`/r${i}`, server.url), { agent: false }))
    while (entered < 20) await new Promise((r) => setTimeout(r, 5))
    const stopping = server.stop({ graceful: true, timeout: 10_000 })
    await new Promise((r) => setTimeout(r, 50))
    const refused = await new Promise<NodeJS.ErrnoException>((resolve) =>
      net.connect(server.port, '127.0.0.1').on('error', resolve),
    )
    expect(refused.code).toBe('ECONNREFUSED')
    release.resolve()
    const results = await Promise.all(inFlight)
    await stopping
    expect(results.map((r) => r.status)).toEqual(Array(20).fill(200))
    expect(Buffer.concat(results[13]?.chunks ?? []).toString()).toBe('done /r13')
  })

  it('keeps serving a load of keep-alive clients until stop, with no failed in-flight request', async () => {
    const server = await serve({ fetch: async (req) => `ok ${req.path}` })
    const agent = new http.Agent({ keepAlive: true, maxSockets: 8 })
    let ok = 0
    let stopped = false
    const failures: string[] = []
    const worker = async (w: number) => {
      for (let i = 0; i < 500 && !stopped; i++) {
        try {
          const res = await nodeRequest(new URL(`/w${w}/${i}`, server.url), { agent })
          if (res.status === 200) ok++
          else failures.push(`status ${res.status}`)
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code ?? String(err)
          // After stop, new connections are refused and idle keep-alive ones are closed:
          // both happen before a request is in flight. Anything else is a lost request.
          if (!stopped || !['ECONNREFUSED', 'ECONNRESET'].includes(code)) failures.push(code)
          return
        }
      }
    }
    const workers = Array.from({ length: 8 }, (_, w) => worker(w))
    while (ok < 200) await new Promise((r) => setTimeout(r, 5))
    stopped = true
    await server.stop({ timeout: 5000 })
    await Promise.all(workers)
    agent.destroy()
    expect(failures).toEqual([])
    expect(ok).toBeGreaterThanOrEqual(200)
  })
})

describe('serve: upgrade / hijack', () => {
  it('hands the raw connection of a custom Upgrade to the handler as a Duplex', async () => {
    const server = await start({
      fetch(req) {
        if (req.headers.get('upgrade') !== 'x-shout') return { status: 426, body: 'upgrade to x-shout' }
        return {
          headers: { upgrade: 'x-shout', connection: 'Upgrade' },
          upgrade(socket) {
            socket.on('data', (chunk: Buffer) => socket.write(chunk.toString().toUpperCase()))
            socket.on('end', () => socket.end('BYE'))
          },
        }
      },
    })
    const socket = net.connect(server.port, '127.0.0.1')
    await once(socket, 'connect')
    socket.write('GET /shout HTTP/1.1\r\nHost: x\r\nUpgrade: x-shout\r\nConnection: Upgrade\r\n\r\n')
    let received = ''
    socket.on('data', (c: Buffer) => {
      received += c.toString('latin1')
    })
    while (!received.includes('\r\n\r\n')) await once(socket, 'data')
    expect(received).toMatch(/^HTTP\/1\.1 101 Switching Protocols\r\n/)
    expect(received.toLowerCase()).toContain('upgrade: x-shout')
    received = ''
    socket.write('hello raw world')
    while (received.length < 15) await once(socket, 'data')
    expect(received).toBe('HELLO RAW WORLD')
    received = ''
    socket.end()
    await once(socket, 'close')
    expect(received).toBe('BYE')
  })
})

describe('serve: listen targets', () => {
  it('listens on a unix socket path', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'hypersock-')), 'http.sock')
    const server = await start({ unix: path, fetch: (req) => `via unix ${req.remoteAddress === '' ? 'ok' : 'no'}` })
    expect(server.unix).toBe(path)
    expect(server.port).toBe(0)
    const res = await nodeRequest('http://localhost/', { socketPath: path })
    expect(Buffer.concat(res.chunks).toString()).toBe('via unix ok')
  })

  it('shares a port between servers with reusePort', async () => {
    const a = await start({ reusePort: true, fetch: () => 'a' })
    const b = await start({ reusePort: true, port: a.port, fetch: () => 'b' })
    expect(b.port).toBe(a.port)
    const seen = new Set<string>()
    for (let i = 0; i < 40 && seen.size < 2; i++) {
      seen.add(Buffer.concat((await nodeRequest(a.url, { agent: false })).chunks).toString())
    }
    expect([...seen].every((s) => s === 'a' || s === 'b')).toBe(true)
  })
})

describe('serve: observability', () => {
  it('counts connections, requests, bytes and statuses, and exposes Prometheus text', async () => {
    const log: AccessLogEntry[] = []
    const server = await start({
      fetch: (req) => (req.path === '/missing' ? { status: 404, body: 'no' } : 'hello'),
      accessLog: (entry) => log.push(entry),
    })
    for (const p of ['/a', '/b', '/missing']) await (await fetch(new URL(p, server.url))).text()
    const stats = server.stats()
    expect(stats.requestsTotal).toBe(3)
    expect(stats.responses['2xx']).toBe(2)
    expect(stats.responses['4xx']).toBe(1)
    expect(stats.bytesIn).toBeGreaterThan(0)
    expect(stats.bytesOut).toBeGreaterThan(0)
    expect(stats.connectionsTotal).toBeGreaterThanOrEqual(1)
    const text = server.metrics()
    expect(text).toContain('# TYPE hypersock_requests_total counter\nhypersock_requests_total 3\n')
    expect(text).toContain('hypersock_responses_total{code="4xx"} 1\n')
    expect(log.map((e) => [e.method, new URL(e.url).pathname, e.status])).toEqual([
      ['GET', '/a', 200],
      ['GET', '/b', 200],
      ['GET', '/missing', 404],
    ])
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

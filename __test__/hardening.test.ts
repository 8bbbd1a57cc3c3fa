// Regression tests of the holes an adversarial run found: each test here failed before its fix.
import { once } from 'node:events'
import type http from 'node:http'
import http2 from 'node:http2'
import net from 'node:net'
import zlib from 'node:zlib'
import {
  Client,
  CookieJar,
  EventSource,
  type HypersockError,
  RedisAdapter,
  type Server,
  serve,
  WebSocket,
} from 'hypersock'
import { describe, expect, it } from 'vitest'
import WS from 'ws'
import { caught, nodeHttpPeers, trackServers } from './helpers.js'

const track = trackServers()
const peers = nodeHttpPeers()

async function start(options: Parameters<typeof serve>[0]): Promise<Server> {
  return track(await serve({ hostname: '127.0.0.1', port: 0, ...options }))
}

interface RawResponse {
  status: number
  headers: Map<string, string>
  body: Buffer
}

/**
 * Sends `data` on one connection and parses `count` HTTP/1.1 responses off the wire, framed
 * strictly by their Content-Length (as a keep-alive client would), plus whatever bytes follow.
 */
async function exchange(
  port: number,
  data: string,
  count: number,
  bodiless = false,
): Promise<{ responses: RawResponse[]; rest: Buffer }> {
  const socket = net.connect(port, '127.0.0.1')
  await once(socket, 'connect')
  socket.write(data)
  let buf = Buffer.alloc(0)
  const responses: RawResponse[] = []
  const parse = (): boolean => {
    for (;;) {
      if (responses.length === count) return true
      const end = buf.indexOf('\r\n\r\n')
      if (end < 0) return false
      const lines = buf.subarray(0, end).toString('latin1').split('\r\n')
      const status = Number(lines[0]?.split(' ')[1])
      const headers = new Map<string, string>()
      for (const line of lines.slice(1)) {
        const i = line.indexOf(':')
        headers.set(line.slice(0, i).trim().toLowerCase(), line.slice(i + 1).trim())
      }
      const length = bodiless ? 0 : Number(headers.get('content-length') ?? '0')
      if (buf.length < end + 4 + length) return false
      responses.push({ status, headers, body: buf.subarray(end + 4, end + 4 + length) })
      buf = buf.subarray(end + 4 + length)
    }
  }
  socket.on('data', (chunk: Buffer) => {
    buf = Buffer.concat([buf, chunk])
    if (parse()) setTimeout(() => socket.destroy(), 100)
  })
  socket.on('error', () => {})
  await once(socket, 'close')
  parse()
  return { responses, rest: buf }
}

describe('a handler’s Content-Length never frames the response (response splitting)', () => {
  const text = 'héllo wörld'
  const injected = 'abc\r\n\r\nHTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nforged'
  const routes: Record<string, () => unknown> = {
    '/utf8': () => ({ headers: { 'content-length': String(text.length) }, body: text }),
    '/short': () => ({ headers: { 'content-length': '1' }, body: injected }),
    '/long': () => ({ headers: [['Content-Length', '5000']], body: 'tiny' }),
    '/bytes': () => ({ headers: { 'content-length': '2' }, body: new Uint8Array([1, 2, 3, 4, 5]) }),
    '/global': () => new Response('hello', { headers: { 'content-length': '1' } }),
    '/nan': () => ({ headers: { 'content-length': 'abc' }, body: 'x' }),
    '/two': () => ({
      headers: [
        ['content-length', '3'],
        ['content-length', '4'],
      ],
      body: 'abc',
    }),
    '/head': () => ({ headers: { 'content-length': '1234' }, body: '' }),
  }

  it('sends the real length of a whole body, whatever the handler set, and keeps the next response intact', async () => {
    const server = await start({
      fetch(req) {
        const route = routes[new URL(req.url).pathname]
        return route ? (route() as Response) : 'next'
      },
    })
    const paths = ['/utf8', '/short', '/long', '/bytes', '/global']
    const raw = paths.map((p) => `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n`).join('')
    const { responses, rest } = await exchange(server.port, raw, paths.length * 2)
    expect(responses.map((r) => r.status)).toEqual(paths.flatMap(() => [200, 200]))
    const bodies = responses.map((r) => r.body.toString('utf8'))
    expect(bodies).toEqual([
      text,
      'next',
      injected,
      'next',
      'tiny',
      'next',
      '\u0001\u0002\u0003\u0004\u0005',
      'next',
      'hello',
      'next',
    ])
    expect(responses[0]?.headers.get('content-length')).toBe('13')
    expect(rest.length).toBe(0)
  })

  it('answers 500 for a Content-Length that is not one number, and keeps a HEAD response’s own', async () => {
    const server = await start({
      fetch(req) {
        return routes[new URL(req.url).pathname]?.() as Response
      },
    })
    const bad = await exchange(
      server.port,
      'GET /nan HTTP/1.1\r\nHost: x\r\n\r\nGET /two HTTP/1.1\r\nHost: x\r\n\r\n',
      2,
    )
    expect(bad.responses.map((r) => r.status)).toEqual([500, 500])
    expect(bad.responses[0]?.body.toString()).toMatch(/invalid Content-Length/)
    const head = await exchange(server.port, 'HEAD /head HTTP/1.1\r\nHost: x\r\n\r\n', 1, true)
    expect(head.responses[0]?.status).toBe(200)
    expect(head.responses[0]?.headers.get('content-length')).toBe('1234')
    expect(head.rest.length).toBe(0)
  })
})

describe('responses without content, and framing the handler does not own', () => {
  const handler = (req: Request) => {
    const path = new URL(req.url).pathname
    if (path === '/te') return { headers: { 'transfer-encoding': 'chunked' }, body: 'abcdef' }
    if (path === '/te-response') return new Response('abcdef', { headers: { 'transfer-encoding': 'gzip' } })
    if (path === '/204') return { status: 204, headers: { 'content-length': '6' }, body: 'abcdef' }
    if (path === '/304') return { status: 304, headers: { 'content-length': '100' } }
    return 'hello'
  }

  it('HTTP/1.1: drops a handler Transfer-Encoding and the content of 204 and 304, keeping the connection in step', async () => {
    const server = await start({ fetch: handler as never })
    const paths = ['/te', '/te-response', '/204', '/304']
    const raw = paths.map((p) => `GET ${p} HTTP/1.1\r\nHost: x\r\n\r\nGET /after HTTP/1.1\r\nHost: x\r\n\r\n`).join('')
    const { responses, rest } = await exchange(server.port, raw, paths.length * 2)
    expect(responses.map((r) => r.status)).toEqual([200, 200, 200, 200, 204, 200, 304, 200])
    expect(responses.map((r) => r.body.toString())).toEqual([
      'abcdef',
      'hello',
      'abcdef',
      'hello',
      '',
      'hello',
      '',
      'hello',
    ])
    for (const r of responses) expect(r.headers.has('transfer-encoding')).toBe(false)
    expect(responses[4]?.headers.has('content-length')).toBe(false)
    expect(responses[6]?.headers.has('content-length')).toBe(false)
    expect(rest.length).toBe(0)
  })

  it('HTTP/2: HEAD, 204 and 304 end their streams cleanly with no DATA', async () => {
    const server = await start({ fetch: handler as never })
    const session = http2.connect(`http://127.0.0.1:${server.port}`)
    session.on('error', () => {})
    try {
      const ask = (method: string, path: string) =>
        new Promise<{ status: number; length: string | undefined; data: number }>((resolve, reject) => {
          const stream = session.request({ ':method': method, ':path': path })
          let status = 0
          let length: string | undefined
          let data = 0
          stream.on('response', (h) => {
            status = Number(h[':status'])
            length = h['content-length'] as string | undefined
          })
          stream.on('data', (c: Buffer) => {
            data += c.length
          })
          stream.on('end', () => resolve({ status, length, data }))
          stream.on('error', reject)
        })
      expect(await ask('HEAD', '/')).toEqual({ status: 200, length: '5', data: 0 })
      expect(await ask('HEAD', '/te')).toEqual({ status: 200, length: '6', data: 0 })
      expect(await ask('GET', '/204')).toEqual({ status: 204, length: undefined, data: 0 })
      expect(await ask('HEAD', '/204')).toEqual({ status: 204, length: undefined, data: 0 })
      expect(await ask('GET', '/304')).toEqual({ status: 304, length: undefined, data: 0 })
      expect(await ask('GET', '/te')).toEqual({ status: 200, length: '6', data: 6 })
    } finally {
      session.close()
    }
  })
})

describe('headerReadTimeout runs from accept in every protocol mode', () => {
  for (const http2 of [undefined, true, 'only'] as const) {
    it(`closes silent sockets and a partial h2 preface (http2: ${String(http2)})`, async () => {
      const server = await start({
        headerReadTimeout: 300,
        idleTimeout: 0,
        maxConnections: 2,
        http2,
        fetch: () => 'served',
      })
      const silent = net.connect(server.port, '127.0.0.1')
      const preface = net.connect(server.port, '127.0.0.1')
      preface.write('PRI * HTTP/2.0\r\n')
      // Read what the server sends (its HTTP/2 SETTINGS), so that its close is seen.
      for (const s of [silent, preface]) s.on('error', () => {}).resume()
      // Both slots are taken by sockets that never send a request: the server must free them.
      await Promise.all([once(silent, 'close'), once(preface, 'close')])
      expect(server.stats().timeouts).toBeGreaterThanOrEqual(2)
      if (http2 !== 'only') {
        const res = await fetch(server.url)
        expect(await res.text()).toBe('served')
      }
    })
  }

  it('headerReadTimeout: 0 turns the limit off, also for a head sent in pieces', async () => {
    const server = await start({ headerReadTimeout: 0, fetch: () => 'ok' })
    const socket = net.connect(server.port, '127.0.0.1')
    await once(socket, 'connect')
    socket.write('GET / HTTP/1.1\r\nHo')
    await new Promise((r) => setTimeout(r, 50))
    socket.write('st: x\r\n\r\n')
    const [reply] = (await once(socket, 'data')) as [Buffer]
    expect(reply.toString()).toMatch(/^HTTP\/1\.1 200/)
    socket.destroy()
  })

  it('keeps a connection that sent its request head in time', async () => {
    const server = await start({ headerReadTimeout: 300, fetch: async () => 'ok' })
    const { responses } = await exchange(server.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n', 1)
    expect(responses[0]?.status).toBe(200)
  })
})

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

describe('the client stops inside its limits', () => {
  it('stops a brotli bomb at maxDecodedSize without inflating it', async () => {
    const zeros = Buffer.alloc(16 << 20)
    const bomb = zlib.brotliCompressSync(Buffer.concat(Array.from({ length: 16 }, () => zeros)), {
      params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5, [zlib.constants.BROTLI_PARAM_LGWIN]: 24 },
    })
    expect(bomb.length).toBeLessThan(64 * 1024)
    const url = await peers.serve((_req: http.IncomingMessage, res: http.ServerResponse) => {
      res.writeHead(200, { 'content-encoding': 'br', 'content-length': bomb.length })
      res.end(bomb)
    })
    const client = new Client({ maxDecodedSize: 1 << 20 })
    globalThis.gc?.()
    const before = process.memoryUsage().rss
    const drain = async (body: ReadableStream<Uint8Array> | null): Promise<unknown> => {
      const reader = body?.getReader()
      while (reader && !(await reader.read()).done) {}
      return null
    }
    const reads: Array<(r: Response) => Promise<unknown>> = [(r) => r.arrayBuffer(), (r) => drain(r.body)]
    for (const read of reads) {
      // The first chunk is decoded with the head, so the error may come from fetch itself.
      const err = (await client
        .fetch(url)
        .then((res) => read(res as unknown as Response))
        .catch((e: unknown) => e)) as HypersockError
      expect(err.code).toBe('ERR_BODY_TOO_LARGE')
    }
    // 256 MiB of output were on offer; a decoder that checked only between input pieces held it.
    expect(process.memoryUsage().rss - before).toBeLessThan(96 << 20)
  })

  it('reads a decoded bomb in small pieces under the default limit, holding little memory', async () => {
    const zeros = Buffer.alloc(16 << 20)
    const bomb = zlib.brotliCompressSync(Buffer.concat(Array.from({ length: 16 }, () => zeros)), {
      params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 5, [zlib.constants.BROTLI_PARAM_LGWIN]: 24 },
    })
    const url = await peers.serve((_req: http.IncomingMessage, res: http.ServerResponse) => {
      res.writeHead(200, { 'content-encoding': 'br', 'content-length': bomb.length })
      res.end(bomb)
    })
    globalThis.gc?.()
    const before = process.memoryUsage().rss
    let peak = 0
    let total = 0
    let largest = 0
    const res = await new Client().fetch(url)
    const reader = (res.body as ReadableStream<Uint8Array>).getReader()
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      total += value.byteLength
      largest = Math.max(largest, value.byteLength)
      peak = Math.max(peak, process.memoryUsage().rss - before)
    }
    expect(total).toBe(256 << 20)
    expect(largest).toBeLessThanOrEqual((1 << 20) + (64 << 10))
    // 256 MiB came out; one input chunk used to become one output chunk of all of it.
    expect(peak).toBeLessThan(128 << 20)
  })

  it('hands over each piece of a streamed body as it arrives', async () => {
    let release!: () => void
    const released = new Promise<void>((r) => {
      release = r
    })
    const url = await peers.serve((_req: http.IncomingMessage, res: http.ServerResponse) => {
      res.writeHead(200, { 'content-type': 'text/plain' })
      res.write('first line\n')
      void released.then(() => res.end('second line\n'))
    })
    const res = await new Client().fetch(url)
    const reader = (res.body as ReadableStream<Uint8Array>).getReader()
    // The server sends its second line only once the first has been read here.
    const first = await reader.read()
    expect(Buffer.from(first.value ?? []).toString()).toBe('first line\n')
    release()
    let rest = ''
    for (let r = await reader.read(); !r.done; r = await reader.read()) rest += Buffer.from(r.value).toString()
    expect(rest).toBe('second line\n')
  })

  it('frees the connection when a response body is cancelled', async () => {
    const url = await peers.serve((_req: http.IncomingMessage, res: http.ServerResponse) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' })
      const chunk = Buffer.alloc(64 * 1024, 1)
      const pump = () => {
        while (!res.destroyed && res.write(chunk)) {}
      }
      res.on('drain', pump)
      pump()
    })
    const client = new Client({ maxConnectionsPerHost: 2 })
    for (let round = 0; round < 3; round++) {
      const pending = await Promise.all([client.fetch(url), client.fetch(url)])
      for (const res of pending) {
        const reader = (res.body as ReadableStream<Uint8Array>).getReader()
        expect((await reader.read()).done).toBe(false)
        await reader.cancel()
      }
    }
    // Six bodies cancelled with a limit of two connections: each cancel gave its connection back.
    const res = await client.fetch(url)
    await res.body?.cancel()
    expect(res.status).toBe(200)
  })

  it('reads a response with 300 header fields and names the reason past the limit', async () => {
    const server = net.createServer((socket) => {
      socket.once('data', (req: Buffer) => {
        const n = req.toString().includes('/many') ? 2000 : 300
        const fields = Array.from({ length: n }, (_, i) => `x-h${i}: ${i}\r\n`).join('')
        socket.end(`HTTP/1.1 200 OK\r\n${fields}content-length: 2\r\nconnection: close\r\n\r\nok`)
      })
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    peers.cleanups.push(() => server.close())
    const base = `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`
    const res = await new Client().fetch(`${base}/some`)
    expect(res.headers.get('x-h299')).toBe('299')
    expect(await res.text()).toBe('ok')
    const err = (await new Client().fetch(`${base}/many`).catch((e: unknown) => e)) as HypersockError
    expect(err.code).toBe('ERR_HTTP_PROTOCOL')
    expect(err.message).toMatch(/more than 1024 header fields/)
  })

  it('fails an event stream whose line or event passes maxEventSize, without reconnecting', async () => {
    let connections = 0
    const url = await peers.serve((req: http.IncomingMessage, res: http.ServerResponse) => {
      connections++
      res.writeHead(200, { 'content-type': 'text/event-stream' })
      if (req.url === '/line') res.write(`data: ${'x'.repeat(256 * 1024)}`)
      else for (let i = 0; i < 100; i++) res.write(`data: ${'y'.repeat(1000)}\n`)
    })
    for (const path of ['/line', '/event']) {
      connections = 0
      const es = new EventSource(`${url}${path}`, { maxEventSize: 64 * 1024, retry: 10 })
      const [ev] = (await once(es, 'error')) as [{ error?: HypersockError }]
      expect(ev.error?.code).toBe('ERR_SSE_EVENT_TOO_LARGE')
      expect(es.readyState).toBe(EventSource.CLOSED)
      expect(connections).toBe(1)
    }
    const err = await caught(() => new EventSource(url, { maxEventSize: 0 }))
    expect(err.code).toBe('ERR_INVALID_ARG_VALUE')
    expect(err.message).toMatch(/maxEventSize/)
  })
})

describe('the cookie jar keeps browser limits and the Secure rules', () => {
  it('refuses oversized cookies and caps a site and the jar', () => {
    const jar = new CookieJar()
    expect(jar.setCookie(`big=${'v'.repeat(4096)}`, 'https://example.com/')).toBeNull()
    expect(jar.setCookie(`ok=${'v'.repeat(4000)}`, 'https://example.com/')).not.toBeNull()
    for (let i = 0; i < 300; i++) jar.setCookie(`c${i}=1; Domain=example.com`, `https://a${i % 5}.example.com/`)
    const names = jar.getCookies('https://www.example.com/').map((c) => c.name)
    expect(names.length).toBe(180)
    expect(names).toContain('c299')
    expect(names).not.toContain('c119')
    expect(jar.getCookieString('https://www.example.com/').length).toBeLessThan(180 * 12)
    for (let site = 0; site < 40; site++) {
      for (let i = 0; i < 100; i++) jar.setCookie(`k${i}=1`, `https://site${site}.com/`)
    }
    expect(jar.getCookies('https://site0.com/')).toEqual([])
    expect(jar.getCookies('https://site39.com/').length).toBe(100)
  })

  it('stores Secure cookies only from secure origins and lets no http response overwrite one', () => {
    const jar = new CookieJar()
    expect(jar.setCookie('s=1; Secure', 'http://example.com/')).toBeNull()
    expect(jar.setCookie('s=1; Secure', 'https://example.com/')).not.toBeNull()
    expect(jar.setCookie('s=evil', 'http://example.com/')).toBeNull()
    expect(jar.setCookie('s=evil; Domain=example.com', 'http://sub.example.com/')).toBeNull()
    expect(jar.getCookieString('https://example.com/')).toBe('s=1')
    expect(jar.getCookieString('http://example.com/')).toBe('')
    // Loopback counts as secure, as in browsers.
    expect(jar.setCookie('dev=1; Secure', 'http://127.0.0.1:3000/')).not.toBeNull()
    expect(jar.getCookieString('http://localhost:3000/')).toBe('')
    expect(jar.getCookieString('http://127.0.0.1:3000/')).toBe('dev=1')
  })
})

describe('one rule for TLS options', () => {
  it('refuses a non-boolean rejectUnauthorized and unknown keys everywhere', async () => {
    const bad = { rejectUnauthorized: 0 } as unknown as { rejectUnauthorized: boolean }
    for (const make of [() => new Client({ tls: bad }), () => new WebSocket('wss://127.0.0.1:1/', [], { tls: bad })]) {
      const err = await caught(make)
      expect(err.code).toBe('ERR_INVALID_ARG_VALUE')
      expect(err.message).toMatch(/tls.rejectUnauthorized must be true or false/)
    }
    const typo = { rejectUnauthorised: false } as unknown as { rejectUnauthorized: boolean }
    for (const make of [
      () => new Client({ tls: typo }),
      () => new WebSocket('wss://127.0.0.1:1/', [], { tls: typo }),
    ]) {
      let err: HypersockError | undefined
      try {
        make()
      } catch (e) {
        err = e as HypersockError
      }
      expect(err?.code).toBe('ERR_INVALID_ARG_VALUE')
      expect(err?.message).toMatch(/did you mean tls.rejectUnauthorized/)
    }
    const typoServe = await caught(() =>
      serve({ port: 0, tls: { cert: 'x', key: 'y', minVerison: 'TLSv1.3' } as never, fetch: () => 'x' }),
    )
    expect(typoServe.code).toBe('ERR_INVALID_ARG_VALUE')
    expect(typoServe.message).toMatch(/did you mean tls.minVersion/)
    const sniServe = await caught(() =>
      serve({
        port: 0,
        tls: { cert: 'x', key: 'y', sni: [{ serverName: 'a', cert: 'x', key: 'y', requireClientCert: 1 }] } as never,
        fetch: () => 'x',
      }),
    )
    expect(sniServe.code).toBe('ERR_INVALID_ARG_VALUE')
    expect(sniServe.message).toMatch(/tls.sni\[0\].requireClientCert is not a TLS option/)
    // Checked when the adapter is made, not later when a server binds it.
    const adapter = await caught(() => new RedisAdapter({ url: 'rediss://127.0.0.1:1', tls: bad }))
    expect(adapter.code).toBe('ERR_INVALID_ARG_VALUE')
    expect(adapter.message).toMatch(/tls.rejectUnauthorized must be true or false/)
  })
})

describe('multipart fields decode as WHATWG says', () => {
  it('drops a leading byte order mark of a text field', async () => {
    const server = await start({
      async fetch(req) {
        return String((await req.formData()).get('f'))
      },
    })
    const form = new FormData()
    form.append('f', '\uFEFFbom')
    const res = await globalThis.fetch(server.url, { method: 'POST', body: form })
    expect(await res.text()).toBe('bom')
  })

  it('refuses a malformed body with a TypeError that says what is wrong', async () => {
    const server = await start({
      async fetch(req) {
        try {
          await req.formData()
          return 'parsed'
        } catch (e) {
          const err = e as TypeError & { cause?: { code?: string } }
          return `${err.name}|${err.cause?.code}|${err.message}`
        }
      },
    })
    const res = await globalThis.fetch(server.url, {
      method: 'POST',
      headers: { 'content-type': 'multipart/form-data; boundary=XX' },
      body: '--XX\r\ncontent-disposition: form-data; name="f"\r\n\r\nno closing boundary',
    })
    const [name, code, message] = (await res.text()).split('|')
    expect(name).toBe('TypeError')
    expect(code).toBe('ERR_INVALID_ARG_VALUE')
    expect(message).toMatch(/^multipart\/form-data body: /)
  })
})

describe('request heads the server refuses', () => {
  it('answers 400 to a Host that is not a host', async () => {
    const server = await start({ fetch: (req) => req.url })
    for (const host of ['exa mple', 'a/b', 'x@evil.com', '[::1', 'h:80a']) {
      const { responses } = await exchange(server.port, `GET /p HTTP/1.1\r\nHost: ${host}\r\n\r\n`, 1)
      expect(responses[0]?.status).toBe(400)
      expect(responses[0]?.body.toString()).toBe('invalid Host header\n')
    }
    const { responses } = await exchange(server.port, 'GET /p HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n', 1)
    expect(responses[0]?.body.toString()).toBe('http://[::1]:8080/p')
  })
})

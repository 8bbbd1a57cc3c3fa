// How the server frames what it writes and what it refuses to read: a handler's Content-Length
// never frames a response, responses without content, the first-request header timeout in every
// protocol mode, request heads that are refused, and multipart fields. Parsed strictly off the wire.
import { once } from 'node:events'
import http2 from 'node:http2'
import net from 'node:net'
import { type Server, serve } from 'hypersock'
import { describe, expect, it } from 'vitest'
import { exchange, trackServers } from './helpers.js'

const track = trackServers()

async function start(options: Parameters<typeof serve>[0]): Promise<Server> {
  return track(await serve({ hostname: '127.0.0.1', port: 0, ...options }))
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

describe('one clear-text port for HTTP/1.1 and HTTP/2 (http2: true, the default)', () => {
  it('tells an HTTP/2 preface sent byte by byte from HTTP/1.1, and serves both', async () => {
    const server = await start({ fetch: (req) => `${req.httpVersion} ${req.method}` })
    // A proxy that passes the client's first 64 bytes on one at a time, the rest as they come.
    const proxy = net.createServer((client) => {
      const upstream = net.connect(server.port, '127.0.0.1')
      upstream.setNoDelay(true)
      let sent = 0
      let chain = Promise.resolve()
      client.on('data', (data: Buffer) => {
        chain = chain.then(async () => {
          for (const byte of data) {
            upstream.write(Buffer.of(byte))
            if (sent++ < 64) await new Promise((r) => setTimeout(r, 1))
          }
        })
      })
      upstream.pipe(client)
      client.on('error', () => upstream.destroy())
      upstream.on('error', () => client.destroy())
      client.on('close', () => upstream.destroy())
    })
    proxy.listen(0, '127.0.0.1')
    await once(proxy, 'listening')
    const proxyPort = (proxy.address() as net.AddressInfo).port
    try {
      const session = http2.connect(`http://127.0.0.1:${proxyPort}`)
      const viaH2 = await new Promise<string>((resolve, reject) => {
        session.on('error', reject)
        const req = session.request({ ':path': '/' })
        let text = ''
        req.on('data', (d: Buffer) => {
          text += d.toString()
        })
        req.on('end', () => resolve(text))
        req.on('error', reject)
        req.end()
      })
      session.close()
      expect(viaH2).toBe('2 GET')
      // HTTP/1.1 through the same proxy, and a method that starts like the preface.
      for (const [head, status] of [
        ['GET / HTTP/1.1\r\nHost: x\r\n\r\n', /^HTTP\/1\.1 200[\s\S]*1\.1 GET$/],
        ['PRIX / HTTP/1.1\r\nHost: x\r\n\r\n', /^HTTP\/1\.1 200[\s\S]*1\.1 PRIX$/],
      ] as const) {
        const h1 = net.connect(proxyPort, '127.0.0.1')
        await once(h1, 'connect')
        const reply = once(h1, 'data') as Promise<[Buffer]>
        h1.write(head)
        const [data] = await reply
        expect(data.toString()).toMatch(status)
        h1.destroy()
      }
    } finally {
      proxy.close()
    }
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

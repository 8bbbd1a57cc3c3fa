import { execFile } from 'node:child_process'
import http from 'node:http'
import net from 'node:net'
import { promisify } from 'node:util'
import {
  ClientResponse,
  type HypersockError,
  Response as HypersockResponse,
  fetch as hfetch,
  type Server,
  ServerError,
  serve,
} from 'hypersock'
import { describe, expect, it } from 'vitest'
import { deferred, rawExchange, trackServers } from './helpers.js'

const run = promisify(execFile)
const track = trackServers()

async function start(options: Parameters<typeof serve>[0]): Promise<Server> {
  return track(await serve(options))
}

describe('serve: HTTP/1.1 slice', () => {
  it('hands method, URL, multi-value headers and body to the handler and sends its response', async () => {
    let seen: { method: string; url: string; accept: string | null; tags: string | null; body: string } | undefined
    const server = await start({
      port: 0,
      hostname: '127.0.0.1',
      async fetch(req) {
        seen = {
          method: req.method,
          url: req.url,
          accept: req.headers.get('accept'),
          tags: req.headers.get('x-tag'),
          body: await req.text(),
        }
        return {
          status: 201,
          headers: [
            ['set-cookie', 'a=1; Path=/'],
            ['set-cookie', 'b=2; HttpOnly'],
            ['content-type', 'text/plain'],
          ],
          body: `created ${req.query.get('id')}`,
        }
      },
    })
    expect(server.port).toBeGreaterThan(0)
    expect(server.url.href).toBe(`http://127.0.0.1:${server.port}/`)
    const headers = new Headers([
      ['accept', 'text/plain'],
      ['x-tag', 'one'],
      ['x-tag', 'two'],
    ])
    const res = await globalThis.fetch(new URL('/items?id=7', server.url), { method: 'POST', headers, body: 'payload' })
    expect(res.status).toBe(201)
    expect(await res.text()).toBe('created 7')
    expect(res.headers.getSetCookie()).toEqual(['a=1; Path=/', 'b=2; HttpOnly'])
    expect(seen).toEqual({
      method: 'POST',
      url: `http://127.0.0.1:${server.port}/items?id=7`,
      accept: 'text/plain',
      tags: 'one, two',
      body: 'payload',
    })
  })

  it('returns string, Buffer, Uint8Array, global Response and plain-object bodies', async () => {
    const server = await start({
      fetch(req) {
        switch (req.path) {
          case '/string':
            return 'hello'
          case '/buffer':
            return Buffer.from([0, 1, 2, 255])
          case '/u8':
            return new Uint8Array([9, 8, 7])
          case '/response':
            return new Response('{"ok":true}', { status: 202, headers: { 'content-type': 'application/json' } })
          default:
            return { status: 404, body: 'nope' }
        }
      },
    })
    const get = (p: string) => globalThis.fetch(new URL(p, server.url))
    const s = await get('/string')
    expect([s.status, s.headers.get('content-type'), await s.text()]).toEqual([
      200,
      'text/plain;charset=utf-8',
      'hello',
    ])
    const b = await get('/buffer')
    expect(b.headers.get('content-type')).toBe('application/octet-stream')
    expect([...new Uint8Array(await b.arrayBuffer())]).toEqual([0, 1, 2, 255])
    expect([...new Uint8Array(await (await get('/u8')).arrayBuffer())]).toEqual([9, 8, 7])
    const r = await get('/response')
    expect([r.status, await r.json()]).toEqual([202, { ok: true }])
    const n = await get('/other')
    expect([n.status, await n.text()]).toEqual([404, 'nope'])
  })

  it('answers 500 when a handler throws or rejects, and keeps serving', async () => {
    const errors: unknown[] = []
    const server = await start({
      fetch(req) {
        if (req.path === '/throw') throw new Error('sync boom')
        if (req.path === '/reject') return Promise.reject(new Error('async boom'))
        return 'fine'
      },
      error(err) {
        errors.push(err)
      },
    })
    const a = await globalThis.fetch(new URL('/throw', server.url))
    expect(a.status).toBe(500)
    const b = await globalThis.fetch(new URL('/reject', server.url))
    expect(b.status).toBe(500)
    const c = await globalThis.fetch(new URL('/ok', server.url))
    expect([c.status, await c.text()]).toEqual([200, 'fine'])
    expect(errors.map((e) => (e as Error).message)).toEqual(['sync boom', 'async boom'])
  })

  it('keeps connections alive across requests (one socket, many requests)', async () => {
    const ports = new Set<number>()
    const server = await start({
      fetch(req) {
        ports.add(req.remotePort)
        return 'ok'
      },
    })
    const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
    for (let i = 0; i < 5; i++) {
      await new Promise<void>((resolve, reject) => {
        http
          .get(server.url, { agent }, (res) => {
            res.resume()
            res.on('end', resolve)
          })
          .on('error', reject)
      })
    }
    agent.destroy()
    expect(ports.size).toBe(1)
  })

  it('talks to curl, repeated headers and all', async () => {
    const server = await start({
      async fetch(req) {
        return {
          headers: [
            ['set-cookie', 'x=1'],
            ['set-cookie', 'y=2'],
          ],
          body: `${req.method} ${await req.text()} ${req.headers.get('x-a')}`,
        }
      },
    })
    const { stdout } = await run('curl', [
      '-sS',
      '-i',
      '-X',
      'PUT',
      '-H',
      'x-a: 1',
      '-H',
      'x-a: 2',
      '--data-binary',
      'body!',
      server.url.href,
    ])
    expect(stdout).toMatch(/^HTTP\/1\.1 200 OK/)
    expect(stdout.match(/^set-cookie: .*$/gim)?.map((l) => l.trim())).toEqual(['set-cookie: x=1', 'set-cookie: y=2'])
    expect(stdout.endsWith('PUT body! 1, 2')).toBe(true)
  })

  it('refuses bodies over maxBodySize with 413, chunked or not', async () => {
    const server = await start({ maxBodySize: 10, fetch: async (req) => `${(await req.bytes()).length}` })
    const small = await globalThis.fetch(server.url, { method: 'POST', body: '0123456789' })
    expect([small.status, await small.text()]).toEqual([200, '10'])
    const big = await globalThis.fetch(server.url, { method: 'POST', body: '0123456789A' })
    expect(big.status).toBe(413)
    const chunked = await rawExchange(
      server.port,
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n6\r\nabcdef\r\n6\r\nghijkl\r\n0\r\n\r\n',
    )
    expect(chunked).toMatch(/^HTTP\/1\.1 413/)
  })

  it('stop() closes the listener; new connections are refused', async () => {
    const server = await serve({ fetch: () => 'ok' })
    const port = server.port
    expect((await globalThis.fetch(server.url)).status).toBe(200)
    await server.stop()
    await server.stop()
    const err = await new Promise<NodeJS.ErrnoException>((resolve) => {
      net.connect(port, '127.0.0.1').on('error', resolve)
    })
    expect(err.code).toBe('ECONNREFUSED')
  })

  it('reports a taken port as EADDRINUSE', async () => {
    const server = await start({ fetch: () => 'ok' })
    const err = await serve({ port: server.port, fetch: () => 'x' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ServerError)
    expect((err as ServerError).code).toBe('EADDRINUSE')
  })

  it('listens on IPv6 loopback', async () => {
    const server = await start({ hostname: '::1', fetch: (req) => req.remoteAddress })
    expect(server.url.href).toBe(`http://[::1]:${server.port}/`)
    const res = await globalThis.fetch(server.url)
    expect(await res.text()).toBe('::1')
  })
})

describe('serve: bad input leaves everyone else served', () => {
  it('answers a malformed request line with 400 and keeps serving', async () => {
    const server = await start({ fetch: () => 'ok' })
    const reply = await rawExchange(server.port, 'GARBAGE\r\n\r\n')
    expect(reply).toMatch(/^HTTP\/1\.1 400/)
    const bad = await rawExchange(server.port, 'GET /\u0000 HTTP/1.1\r\nHost: x\r\n\r\n')
    expect(bad).toMatch(/^HTTP\/1\.1 400/)
    expect(await (await globalThis.fetch(server.url)).text()).toBe('ok')
  })

  it('survives clients that disconnect mid-request', async () => {
    const cut = deferred<string>()
    const server = await start({
      async fetch(req) {
        try {
          return `${(await req.bytes()).length}`
        } catch (err) {
          // The chunked request below is streamed to the handler and then cut.
          cut.resolve((err as HypersockError).code)
          throw err
        }
      },
      error: () => {},
    })
    for (const partial of [
      'GET / HTTP/1.1\r\nHost: x\r\nX-Half: ',
      'POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\nonly part of the body',
      'POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nab',
    ]) {
      const socket = net.connect(server.port, '127.0.0.1')
      await new Promise((r) => socket.once('connect', r))
      socket.write(partial)
      await new Promise((r) => setImmediate(r))
      socket.destroy()
    }
    expect(await cut.promise).toBe('ECONNRESET')
    const res = await globalThis.fetch(server.url, { method: 'POST', body: 'abc' })
    expect(await res.text()).toBe('3')
  })

  it('rejects bad WebSocket handshakes with the right status and keeps serving', async () => {
    const server = await start({ fetch: () => 'plain', websocket: { message: () => {} } })
    const base = 'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n'
    const noKey = await rawExchange(server.port, `${base}Sec-WebSocket-Version: 13\r\n\r\n`)
    expect(noKey).toMatch(/^HTTP\/1\.1 400/)
    const badKey = await rawExchange(
      server.port,
      `${base}Sec-WebSocket-Version: 13\r\nSec-WebSocket-Key: short\r\n\r\n`,
    )
    expect(badKey).toMatch(/^HTTP\/1\.1 400/)
    const badVersion = await rawExchange(
      server.port,
      `${base}Sec-WebSocket-Version: 8\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n`,
    )
    expect(badVersion).toMatch(/^HTTP\/1\.1 426/)
    expect(badVersion.toLowerCase()).toContain('sec-websocket-version: 13')
    const post = await rawExchange(
      server.port,
      `POST /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nContent-Length: 0\r\n\r\n`,
    )
    expect(post).toMatch(/^HTTP\/1\.1 400/)
    expect(await (await globalThis.fetch(server.url)).text()).toBe('plain')
  })
})

describe("hypersock's Response export", () => {
  it('is a WHATWG Response: a handler builds one with new, the client resolves with a ClientResponse', async () => {
    expect(new HypersockResponse('x')).toBeInstanceOf(globalThis.Response)
    expect(Object.getPrototypeOf(HypersockResponse)).toBe(globalThis.Response)
    const server = track(
      await serve({ fetch: () => new HypersockResponse('built', { status: 201, headers: { 'x-made': 'yes' } }) }),
    )
    const res = await hfetch(`http://127.0.0.1:${server.port}/`)
    expect(res).toBeInstanceOf(ClientResponse)
    expect([res.status, res.headers.get('x-made'), await res.text()]).toEqual([201, 'yes', 'built'])
    const clone = new HypersockResponse('x').clone()
    expect(await clone.text()).toBe('x')
  })
})

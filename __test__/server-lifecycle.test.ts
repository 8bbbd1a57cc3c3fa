import { once } from 'node:events'
import { mkdtempSync } from 'node:fs'
import http from 'node:http'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type AccessLogEntry, type Server, serve } from 'hypersock'
import { describe, expect, it } from 'vitest'
import { deferred, nodeRequest, trackServers } from './helpers.js'

const track = trackServers()

async function start(options: Parameters<typeof serve>[0]): Promise<Server> {
  return track(await serve(options))
}

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

  /** A server whose upgrade handler echoes and records when its side of the connection closes. */
  async function echoUpgrades(): Promise<{ server: Server; serverClosed: Promise<void> }> {
    let closed: () => void = () => {}
    const serverClosed = new Promise<void>((resolve) => {
      closed = resolve
    })
    const server = await start({
      fetch: () => ({
        headers: { upgrade: 'x-echo', connection: 'Upgrade' },
        upgrade(socket) {
          socket.on('data', (chunk: Buffer) => socket.write(chunk))
          socket.on('close', closed)
        },
      }),
    })
    return { server, serverClosed }
  }

  async function upgraded(port: number): Promise<net.Socket> {
    const socket = net.connect(port, '127.0.0.1')
    await once(socket, 'connect')
    socket.write('GET / HTTP/1.1\r\nHost: x\r\nUpgrade: x-echo\r\nConnection: Upgrade\r\n\r\n')
    let head = ''
    while (!head.includes('\r\n\r\n')) head += String((await once(socket, 'data'))[0])
    expect(head).toMatch(/^HTTP\/1\.1 101 /)
    socket.write('ping')
    expect(String((await once(socket, 'data'))[0])).toBe('ping')
    return socket
  }

  it('closes its side when the client leaves, as node:http sockets do (no half-open connection)', async () => {
    const { server, serverClosed } = await echoUpgrades()
    const socket = await upgraded(server.port)
    socket.end()
    await once(socket, 'close')
    await serverClosed
  })

  it('stop() ends taken-over connections: at once without grace, else when the timeout runs out', async () => {
    for (const graceful of [false, true]) {
      const { server, serverClosed } = await echoUpgrades()
      const socket = await upgraded(server.port)
      const clientClosed = once(socket, 'close')
      await server.stop({ graceful, timeout: 100 })
      await clientClosed
      await serverClosed
    }
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

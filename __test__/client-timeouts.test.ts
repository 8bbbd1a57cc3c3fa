// Timeouts and cancellation, each against a peer that stalls at one stage. Assertions are on
// codes and phases, never on durations.
import { once } from 'node:events'
import http from 'node:http'
import net from 'node:net'
import { AbortError, Client, type HypersockError, TimeoutError } from 'hypersock'
import { afterEach, describe, expect, it } from 'vitest'
import { deferred } from './helpers.js'

const cleanups: (() => void)[] = []
afterEach(() => {
  for (const c of cleanups.splice(0)) c()
})

/** A TCP server that accepts and never says anything (stalls a TLS handshake). */
async function silentServer(): Promise<{ port: number; accepted: Promise<net.Socket> }> {
  const accepted = deferred<net.Socket>()
  const sockets: net.Socket[] = []
  const server = net.createServer((s) => {
    sockets.push(s)
    s.on('error', () => {})
    s.resume()
    accepted.resolve(s)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  cleanups.push(() => {
    for (const s of sockets) s.destroy()
    server.close()
  })
  return { port: (server.address() as net.AddressInfo).port, accepted: accepted.promise }
}

/** A node:http server running `handler`, closed after the test. */
async function httpServer(handler: http.RequestListener): Promise<{ url: string; server: http.Server }> {
  const server = http.createServer(handler)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  cleanups.push(() => {
    server.closeAllConnections()
    server.close()
  })
  return { url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`, server }
}

async function failure(p: Promise<unknown>): Promise<HypersockError> {
  return p.then(
    () => {
      throw new Error('expected a failure')
    },
    (e: unknown) => e as HypersockError,
  )
}

describe('client timeouts', () => {
  it('connect timeout: a TLS handshake that never completes', async () => {
    const { port } = await silentServer()
    const err = await failure(new Client({ connectTimeout: 100 }).fetch(`https://127.0.0.1:${port}/`))
    expect(err).toBeInstanceOf(TimeoutError)
    expect(err.code).toBe('ETIMEDOUT')
    expect((err as TimeoutError).phase).toBe('connect')
  })

  it('headers timeout: a server that reads the request and never answers', async () => {
    const { url } = await httpServer(() => {})
    const err = await failure(new Client({ headersTimeout: 100 }).fetch(url))
    expect(err.code).toBe('ETIMEDOUT')
    expect((err as TimeoutError).phase).toBe('headers')
    // The engine's error crosses as an object: code and phase are its properties, and the
    // message is for people (no code in front of it to take apart).
    const native = err.cause as { code?: unknown; phase?: unknown; message: string }
    expect(native).toBeInstanceOf(Error)
    expect(native.code).toBe('ETIMEDOUT')
    expect(native.phase).toBe('headers')
    expect(err.message).toBe(native.message)
    expect(err.message).not.toMatch(/^ETIMEDOUT/)
  })

  it('body timeout: a server that sends the head and part of the body, then stalls', async () => {
    const { url } = await httpServer((_req, res) => {
      res.writeHead(200, { 'content-length': '100' })
      res.write('partial')
    })
    const res = await new Client({ bodyTimeout: 100 }).fetch(url)
    expect(res.status).toBe(200)
    const err = await failure(res.text())
    expect(err.code).toBe('ETIMEDOUT')
    expect((err as TimeoutError).phase).toBe('body')
  })

  it('whole-request timeout: a body that trickles forever', async () => {
    const { url } = await httpServer((_req, res) => {
      res.writeHead(200)
      const timer = setInterval(() => res.write('.'), 10)
      res.on('close', () => clearInterval(timer))
    })
    const res = await new Client({ timeout: 200, bodyTimeout: 5_000 }).fetch(url)
    const err = await failure(res.text())
    expect(err.code).toBe('ETIMEDOUT')
    expect((err as TimeoutError).phase).toBe('request')
  })
})

describe('client cancellation with AbortSignal', () => {
  it('aborts before connect', async () => {
    const { url } = await httpServer((_req, res) => res.end('never'))
    const reason = new Error('changed my mind')
    const err = await failure(new Client().fetch(url, { signal: AbortSignal.abort(reason) }))
    expect(err).toBeInstanceOf(AbortError)
    expect(err.code).toBe('ABORT_ERR')
    expect(err.cause).toBe(reason)
  })

  it('aborts while connecting and drops the connection attempt', async () => {
    const { port, accepted } = await silentServer()
    const ctl = new AbortController()
    const pending = new Client().fetch(`https://127.0.0.1:${port}/`, { signal: ctl.signal })
    const socket = await accepted
    ctl.abort()
    const err = await failure(pending)
    expect(err.code).toBe('ABORT_ERR')
    if (!socket.closed) await once(socket, 'close')
    expect(socket.closed).toBe(true)
  })

  it('aborts while waiting for headers, and the server sees the connection close', async () => {
    const gotRequest = deferred<http.IncomingMessage>()
    const { url } = await httpServer((req) => gotRequest.resolve(req))
    const ctl = new AbortController()
    const pending = new Client().fetch(url, { signal: ctl.signal })
    const req = await gotRequest.promise
    const closed = once(req.socket, 'close')
    ctl.abort()
    expect((await failure(pending)).code).toBe('ABORT_ERR')
    await closed
  })

  it('aborts mid-body: the stream errors with AbortError and the connection is dropped', async () => {
    const served = deferred<http.ServerResponse>()
    const { url } = await httpServer((_req, res) => {
      res.writeHead(200, { 'content-length': String(10 * 1024 * 1024) })
      res.write(Buffer.alloc(512 * 1024, 1))
      served.resolve(res)
    })
    const ctl = new AbortController()
    const res = await new Client().fetch(url, { signal: ctl.signal })
    const reader = (res.body as ReadableStream<Uint8Array>).getReader()
    const first = await reader.read()
    expect(first.done).toBe(false)
    const serverRes = await served.promise
    const closed = once(serverRes, 'close')
    ctl.abort()
    const err = await reader.read().then(
      async (r) => {
        // A chunk may already have been on its way; the next read must fail.
        if (!r.done)
          return reader.read().then(
            () => null,
            (e: unknown) => e,
          )
        return null
      },
      (e: unknown) => e,
    )
    expect(err).toBeInstanceOf(AbortError)
    await closed
  })

  it('aborts mid-body while text() is reading', async () => {
    const { url } = await httpServer((_req, res) => {
      res.writeHead(200, { 'content-length': String(10 * 1024 * 1024) })
      res.write(Buffer.alloc(300 * 1024, 1))
    })
    const ctl = new AbortController()
    const res = await new Client().fetch(url, { signal: ctl.signal })
    const reading = res.text()
    setImmediate(() => ctl.abort())
    expect((await failure(reading)).code).toBe('ABORT_ERR')
  })
})

// req.signal (client gone, body timeout, stop without grace; streamed responses stop pulling)
// and sendTimeout (a client that stops reading a response is dropped).
import { execFile } from 'node:child_process'
import http from 'node:http'
import http2 from 'node:http2'
import net from 'node:net'
import { promisify } from 'node:util'
import { type Server, type ServerRequest, serve, sse } from 'hypersock'
import { describe, expect, it } from 'vitest'
import { deferred, trackServers } from './helpers.js'

const run = promisify(execFile)

const track = trackServers()

async function start(options: Parameters<typeof serve>[0]): Promise<Server> {
  return track(await serve(options))
}

/** Polls `check` every 20 ms, for at most `ms`; true once it held. */
async function eventually(check: () => boolean, ms = 10_000): Promise<boolean> {
  for (let waited = 0; waited < ms; waited += 20) {
    if (check()) return true
    await new Promise((r) => setTimeout(r, 20))
  }
  return check()
}

describe('req.signal', () => {
  it('aborts when the client goes away while the handler works', async () => {
    const started = deferred<void>()
    const aborted = deferred<unknown>()
    const server = await start({
      fetch(req) {
        req.signal.addEventListener('abort', () => aborted.resolve(req.signal.reason))
        started.resolve()
        return new Promise(() => {}) // never answers
      },
    })
    const client = http.get(server.url)
    client.on('error', () => {})
    await started.promise
    expect(server.stats().requestsInFlight).toBe(1)
    client.destroy()
    const reason = (await aborted.promise) as { code: string; name: string }
    expect([reason.name, reason.code]).toEqual(['ConnectionError', 'ECONNRESET'])
  })

  it('asked for after the client left, is aborted already (or aborts at once)', async () => {
    const requests: ServerRequest[] = []
    const server = await start({
      fetch(req) {
        requests.push(req)
        return new Promise(() => {})
      },
    })
    const client = http.get(server.url)
    client.on('error', () => {})
    expect(await eventually(() => requests.length === 1)).toBe(true)
    client.destroy()
    const signal = (requests[0] as ServerRequest).signal
    if (!signal.aborted) await new Promise((r) => signal.addEventListener('abort', r))
    expect(signal.aborted).toBe(true)
  })

  it('does not abort for a request answered in full', async () => {
    let signal: AbortSignal | undefined
    const server = await start({
      fetch(req) {
        signal = req.signal
        return 'done'
      },
    })
    const res = await fetch(server.url)
    expect(await res.text()).toBe('done')
    await server.stop()
    expect(signal?.aborted).toBe(false)
  })

  it('a streamed response stops pulling from its source when the client goes away', async () => {
    const events = { pulled: 0, finished: deferred<void>(), aborted: deferred<void>() }
    const server = await start({
      fetch(req) {
        req.signal.addEventListener('abort', () => events.aborted.resolve())
        async function* ticks() {
          try {
            for (let i = 0; i < 10_000; i++) {
              events.pulled++
              yield { data: `tick ${i}` }
              await new Promise((r) => setTimeout(r, 10))
            }
          } finally {
            events.finished.resolve()
          }
        }
        return sse(ticks())
      },
    })
    const first = deferred<void>()
    const client = http.get(server.url, (res) => {
      res.once('data', () => first.resolve())
    })
    client.on('error', () => {})
    await first.promise
    client.destroy()
    await events.aborted.promise
    await events.finished.promise
    const pulled = events.pulled
    await new Promise((r) => setTimeout(r, 100))
    expect(events.pulled).toBe(pulled)
    expect(pulled).toBeLessThan(10_000)
  })

  it('a ReadableStream body is cancelled when the client goes away mid-wait', async () => {
    const cancelled = deferred<unknown>()
    const server = await start({
      fetch() {
        const stream = new ReadableStream<string>({
          start(controller) {
            controller.enqueue('first chunk\n')
            // and then nothing: the next pull waits forever
          },
          cancel(reason) {
            cancelled.resolve(reason ?? 'cancelled')
          },
        })
        return new Response(stream.pipeThrough(new TextEncoderStream()))
      },
    })
    const first = deferred<void>()
    const client = http.get(server.url, (res) => res.once('data', () => first.resolve()))
    client.on('error', () => {})
    await first.promise
    client.destroy()
    expect(await cancelled.promise).toBeDefined()
  })

  it('aborts with a TimeoutError when the body does not arrive within requestTimeout', async () => {
    const reason = deferred<unknown>()
    const server = await start({
      requestTimeout: 300,
      async fetch(req) {
        req.signal.addEventListener('abort', () => reason.resolve(req.signal.reason))
        await req.text()
        return 'unreachable'
      },
    })
    const socket = net.connect(server.port, '127.0.0.1')
    socket.on('error', () => {})
    socket.write('POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 200000\r\n\r\npartial')
    const got = (await reason.promise) as { code: string }
    expect(got.code).toBe('ETIMEDOUT')
    socket.destroy()
  })

  it('aborts when the server stops without grace', async () => {
    const aborted = deferred<void>()
    const started = deferred<void>()
    const server = await start({
      fetch(req) {
        req.signal.addEventListener('abort', () => aborted.resolve())
        started.resolve()
        return new Promise(() => {})
      },
    })
    const client = http.get(server.url)
    client.on('error', () => {})
    await started.promise
    await server.stop({ graceful: false })
    await aborted.promise
  })
})

describe('sendTimeout', () => {
  it('drops a client that stops reading a response, and counts it', async () => {
    const big = Buffer.alloc(64 << 20, 97)
    const server = await start({ sendTimeout: 300, fetch: () => big })
    const socket = net.connect(server.port, '127.0.0.1')
    socket.on('error', () => {})
    socket.pause()
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    expect(await eventually(() => server.stats().timeouts === 1 && server.stats().connectionsOpen === 0)).toBe(true)
    socket.destroy()
  })

  it('keeps a client that reads slower than the socket buffer drains, as long as it reads', async () => {
    // A small receive buffer on the client, reading 64 KiB every 50 ms: the server's writes stay
    // blocked for longer than sendTimeout at a time (the kernel wakes a writer only once a third
    // of its send buffer is free), but the bytes queued in the socket keep going down.
    const size = 6 << 20
    const server = await start({ sendTimeout: 300, fetch: () => Buffer.alloc(size, 99) })
    const script = [
      'import socket, sys, time',
      's = socket.socket()',
      's.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 65536)',
      `s.connect(("127.0.0.1", ${server.port}))`,
      's.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n")',
      'total = 0',
      `while total < ${size}:`,
      '    chunk = s.recv(65536)',
      '    if not chunk: break',
      '    total += len(chunk)',
      '    time.sleep(0.05)',
      'print(total)',
    ].join('\n')
    const { stdout } = await run('python3', ['-c', script], { timeout: 60_000 })
    expect(Number(stdout.trim())).toBeGreaterThanOrEqual(size)
    expect(server.stats().timeouts).toBe(0)
  })

  // Over HTTP/2 a client stalls a response through flow control: it grants no window (or one
  // byte of it) and reads nothing, so it grants no more; the server's writes never block, and
  // the client's pings keep the connection busy. The stream is reset alone.
  for (const window of [0, 1]) {
    it(`resets an HTTP/2 stream whose client grants a ${window}-byte window and only pings`, async () => {
      const server = await start({
        sendTimeout: 300,
        fetch: (req) =>
          new URL(req.url).pathname === '/empty' ? new Response(null, { status: 204 }) : Buffer.alloc(1 << 20, 97),
      })
      const session = http2.connect(server.url, { settings: { initialWindowSize: window } })
      session.on('error', () => {})
      const pinger = setInterval(() => {
        if (!session.destroyed) session.ping(() => {})
      }, 50)
      const req = session.request({ ':path': '/' })
      req.on('error', () => {})
      req.pause()
      const status = await new Promise<number>((resolve) => req.on('response', (h) => resolve(Number(h[':status']))))
      expect(status).toBe(200)
      await new Promise((resolve) => req.on('close', resolve))
      clearInterval(pinger)
      expect(req.rstCode).toBe(http2.constants.NGHTTP2_CANCEL)
      expect(server.stats().timeouts).toBe(1)
      // The connection and its other streams carry on.
      expect(session.closed || session.destroyed).toBe(false)
      const next = session.request({ ':path': '/empty' })
      const nextStatus = await new Promise<number>((resolve) =>
        next.on('response', (h) => resolve(Number(h[':status']))),
      )
      expect(nextStatus).toBe(204)
      session.close()
    })
  }

  it('resets a stalled HTTP/2 stream whose request body the handler never read', async () => {
    // The unread request body also holds the stream open in HTTP/2; the reset drops it too.
    const server = await start({ sendTimeout: 300, fetch: () => Buffer.alloc(1 << 20, 97) })
    const session = http2.connect(server.url, { settings: { initialWindowSize: 0 } })
    session.on('error', () => {})
    const req = session.request({ ':path': '/', ':method': 'POST' })
    req.on('error', () => {})
    req.pause()
    req.write(Buffer.alloc(200 << 10, 1))
    await new Promise((resolve) => req.on('response', resolve))
    await new Promise((resolve) => req.on('close', resolve))
    expect(req.rstCode).toBe(http2.constants.NGHTTP2_CANCEL)
    expect(server.stats().timeouts).toBe(1)
    session.close()
  })

  it('resets only the HTTP/2 stream a client stopped reading, not its other streams', async () => {
    const server = await start({
      sendTimeout: 300,
      fetch: (req) => Buffer.alloc(new URL(req.url).pathname === '/big' ? 4 << 20 : 256 << 10, 101),
    })
    const session = http2.connect(server.url)
    session.on('error', () => {})
    const stalled = session.request({ ':path': '/big' })
    stalled.on('error', () => {})
    stalled.pause()
    const reset = new Promise((resolve) => stalled.on('close', resolve))
    // Streams that read keep working while one waits, and after it was reset.
    const read = () =>
      new Promise<number>((resolve, reject) => {
        const req = session.request({ ':path': '/small' })
        let n = 0
        req.on('data', (c: Buffer) => {
          n += c.length
        })
        req.on('end', () => resolve(n))
        req.on('error', reject)
      })
    expect(await read()).toBe(256 << 10)
    await reset
    expect(stalled.rstCode).toBe(http2.constants.NGHTTP2_CANCEL)
    expect(await read()).toBe(256 << 10)
    expect(server.stats().timeouts).toBe(1)
    expect(server.stats().connectionsOpen).toBe(1)
    session.close()
  })

  it('keeps an HTTP/2 response whose handler is slower than sendTimeout, and a big one read at once', async () => {
    const big = Buffer.alloc(8 << 20)
    for (let i = 0; i < big.length; i += 4096) big[i] = (i / 4096) & 0xff
    const server = await start({
      sendTimeout: 300,
      fetch(req) {
        if (new URL(req.url).pathname === '/big') return big
        // Three chunks 500 ms apart: the body waits on its producer, not on the client.
        let n = 0
        return new Response(
          new ReadableStream({
            async pull(c) {
              await new Promise((r) => setTimeout(r, 500))
              c.enqueue(new TextEncoder().encode(`chunk ${n}\n`))
              if (++n === 3) c.close()
            },
          }),
        )
      },
    })
    const session = http2.connect(server.url)
    const get = (path: string) =>
      new Promise<Buffer>((resolve, reject) => {
        const req = session.request({ ':path': path })
        const parts: Buffer[] = []
        req.on('data', (c: Buffer) => parts.push(c))
        req.on('end', () => resolve(Buffer.concat(parts)))
        req.on('error', reject)
      })
    const [slow, whole] = await Promise.all([get('/slow'), get('/big')])
    session.close()
    expect(slow.toString()).toBe('chunk 0\nchunk 1\nchunk 2\n')
    expect(whole.equals(big)).toBe(true)
    expect(server.stats().timeouts).toBe(0)
  })

  it('keeps a client that reads slowly but steadily', async () => {
    const server = await start({
      sendTimeout: 2000,
      fetch: () => Buffer.alloc(8 << 20, 98),
    })
    const got = await new Promise<number>((resolve, reject) => {
      http.get(server.url, (res) => {
        let n = 0
        res.on('data', (c: Buffer) => {
          n += c.length
          res.pause()
          setTimeout(() => res.resume(), 2)
        })
        res.on('end', () => resolve(n))
        res.on('error', reject)
      })
    })
    expect(got).toBe(8 << 20)
    expect(server.stats().timeouts).toBe(0)
  })
})

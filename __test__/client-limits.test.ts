// The client stops inside its limits: header counts and sizes, decoded bodies, event-stream
// lines and events, whatever the peer sends.
import { once } from 'node:events'
import type http from 'node:http'
import net from 'node:net'
import zlib from 'node:zlib'
import { Client, EventSource, type HypersockError } from 'hypersock'
import { describe, expect, it } from 'vitest'
import { caught, nodeHttpPeers } from './helpers.js'

const peers = nodeHttpPeers()

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

  it('keeps every byte of a header value that is not UTF-8 (read as Latin-1)', async () => {
    const server = net.createServer((socket) => {
      socket.once('data', () => {
        const head = Buffer.concat([
          Buffer.from('HTTP/1.1 200 OK\r\nx-latin1: caf'),
          Buffer.from([0xe9, 0x20, 0xff]),
          Buffer.from('\r\nx-utf8: caf\u00e9\r\ncontent-length: 2\r\nconnection: close\r\n\r\nok'),
        ])
        socket.end(head)
      })
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    peers.cleanups.push(() => server.close())
    const res = await new Client().fetch(`http://127.0.0.1:${(server.address() as net.AddressInfo).port}/`)
    const latin1 = res.headers.get('x-latin1') as string
    expect(latin1).toBe('caf\u00e9 \u00ff')
    expect([...Buffer.from(latin1, 'latin1')]).toEqual([0x63, 0x61, 0x66, 0xe9, 0x20, 0xff])
    expect(res.headers.get('x-utf8')).toBe('caf\u00e9')
    expect(await res.text()).toBe('ok')
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

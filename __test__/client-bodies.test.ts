// Request and response bodies: every body type, streaming both ways with backpressure, progress,
// large transfers with bounded memory, and decompression (gzip, deflate, br, zstd).
import { execFileSync } from 'node:child_process'
import type http from 'node:http'
import zlib from 'node:zlib'
import { Client, type HypersockError, type Progress } from 'hypersock'
import { describe, expect, it } from 'vitest'
import { deferred, nodeHttpPeers } from './helpers.js'

const { serve } = nodeHttpPeers()

/** Echoes the request body with its content type and transfer encoding. */
function echo(req: http.IncomingMessage, res: http.ServerResponse): void {
  const chunks: Buffer[] = []
  req.on('data', (c: Buffer) => chunks.push(c))
  req.on('end', () => {
    res.setHeader('x-content-type', String(req.headers['content-type'] ?? ''))
    res.setHeader('x-transfer-encoding', String(req.headers['transfer-encoding'] ?? ''))
    res.end(Buffer.concat(chunks))
  })
}

describe('request bodies', () => {
  it('streams a ReadableStream and an async iterable (chunked)', async () => {
    const url = await serve(echo)
    const client = new Client()
    const stream = new ReadableStream<Uint8Array>({
      start(controller) {
        controller.enqueue(new TextEncoder().encode('hello '))
        controller.enqueue(new TextEncoder().encode('stream'))
        controller.close()
      },
    })
    const a = await client.fetch(url, { method: 'POST', body: stream })
    expect(a.headers.get('x-transfer-encoding')).toBe('chunked')
    expect(await a.text()).toBe('hello stream')
    async function* gen() {
      yield 'one,'
      yield Buffer.from('two,')
      yield new Uint8Array([116, 104, 114, 101, 101])
    }
    expect(await (await client.fetch(url, { method: 'PUT', body: gen() })).text()).toBe('one,two,three')
  })

  it('fails the request when the body stream throws', async () => {
    const url = await serve(echo)
    async function* broken() {
      yield 'part'
      throw new Error('disk on fire')
    }
    const err = await new Client().fetch(url, { method: 'POST', body: broken() }).catch((e: unknown) => e)
    expect((err as HypersockError).code).toBe('ERR_INVALID_ARG_VALUE')
    expect((err as HypersockError).message).toContain('disk on fire')
  })

  it('encodes FormData as multipart/form-data, files included', async () => {
    const url = await serve(echo)
    const form = new FormData()
    form.append('name', 'hypersock')
    form.append('multi', 'line1\nline2')
    form.append('file', new Blob([new Uint8Array([0, 1, 2, 255])], { type: 'application/x-bin' }), 'data.bin')
    const res = await new Client().fetch(url, { method: 'POST', body: form })
    const type = res.headers.get('x-content-type') ?? ''
    expect(type).toMatch(/^multipart\/form-data; boundary=/)
    // Parse it back with the platform's own multipart parser.
    const parsed = await new Request('http://x/', {
      method: 'POST',
      headers: { 'content-type': type },
      body: await res.arrayBuffer(),
    }).formData()
    expect(parsed.get('name')).toBe('hypersock')
    expect(parsed.get('multi')).toBe('line1\r\nline2')
    const file = parsed.get('file') as File
    expect(file.name).toBe('data.bin')
    expect(file.type).toBe('application/x-bin')
    expect([...new Uint8Array(await file.arrayBuffer())]).toEqual([0, 1, 2, 255])
  })

  it('sends a Blob with its type', async () => {
    const url = await serve(echo)
    const res = await new Client().fetch(url, {
      method: 'POST',
      body: new Blob(['{"a":1}'], { type: 'application/json' }),
    })
    expect(res.headers.get('x-content-type')).toBe('application/json')
    expect(await res.json()).toEqual({ a: 1 })
  })
})

describe('response bodies', () => {
  it('res.body is a ReadableStream that applies backpressure to the server', async () => {
    const blocked = deferred<void>()
    let finished = false
    const url = await serve((_req, res) => {
      res.writeHead(200)
      const chunk = Buffer.alloc(1024 * 1024, 7)
      let sent = 0
      const pump = () => {
        while (sent < 512) {
          sent++
          if (!res.write(chunk)) {
            blocked.resolve()
            res.once('drain', pump)
            return
          }
        }
        res.end()
        finished = true
      }
      pump()
    })
    const res = await new Client().fetch(url)
    const reader = (res.body as ReadableStream<Uint8Array>).getReader()
    const first = await reader.read()
    expect(first.done).toBe(false)
    await blocked.promise
    // The client holds at most a few chunks; the 512 MiB body cannot have been written.
    await new Promise((r) => setTimeout(r, 200))
    expect(finished).toBe(false)
    let total = first.value?.byteLength ?? 0
    for (;;) {
      const { done, value } = await reader.read()
      if (done) break
      total += value.byteLength
    }
    expect(total).toBe(512 * 1024 * 1024)
    expect(finished).toBe(true)
  })

  it('reports download and upload progress', async () => {
    const url = await serve(echo)
    const down: Progress[] = []
    const up: Progress[] = []
    const body = Buffer.alloc(3 * 1024 * 1024, 1)
    const res = await new Client().fetch(url, {
      method: 'POST',
      body,
      onUploadProgress: (p) => up.push(p),
      onDownloadProgress: (p) => down.push(p),
    })
    expect((await res.bytes()).byteLength).toBe(body.byteLength)
    expect(up.at(-1)).toEqual({ loaded: body.byteLength, total: body.byteLength })
    // A body in memory is told of every 64 KiB as it goes, in order.
    expect(up.length).toBe(body.byteLength / (64 * 1024))
    const upSteps = up.map((p, i) => p.loaded - (i === 0 ? 0 : (up[i - 1] as Progress).loaded))
    expect([Math.min(...upSteps), Math.max(...upSteps)]).toEqual([64 * 1024, 64 * 1024])
    expect(down.at(-1)).toEqual({ loaded: body.byteLength, total: body.byteLength })
    // At least one report per 64 KiB after the first bytes (which come with the head), in order.
    const steps = down.slice(1).map((p, i) => p.loaded - (down[i] as Progress).loaded)
    expect(Math.min(...steps)).toBeGreaterThan(0)
    expect(Math.max(...steps)).toBeLessThanOrEqual(64 * 1024)
    const streamedDown: Progress[] = []
    const again = await new Client().fetch(url, {
      method: 'POST',
      body,
      onDownloadProgress: (p) => streamedDown.push(p),
    })
    let read = 0
    for await (const chunk of again.body as unknown as AsyncIterable<Uint8Array>) read += chunk.byteLength
    expect(read).toBe(body.byteLength)
    expect(streamedDown.at(-1)?.loaded).toBe(body.byteLength)
    const streamedSteps = streamedDown.slice(1).map((p, i) => p.loaded - (streamedDown[i] as Progress).loaded)
    expect(Math.max(...streamedSteps)).toBeLessThanOrEqual(64 * 1024)
    async function* chunks() {
      for (let i = 0; i < 4; i++) yield Buffer.alloc(1000, i)
    }
    const streamed: Progress[] = []
    await (
      await new Client().fetch(url, { method: 'POST', body: chunks(), onUploadProgress: (p) => streamed.push(p) })
    ).text()
    expect(streamed.map((p) => p.loaded)).toEqual([1000, 2000, 3000, 4000])
    // A small body: once, at its end; an empty one too.
    for (const [small, want] of [
      ['x'.repeat(1000), 1000],
      ['', 0],
    ] as const) {
      const seen: Progress[] = []
      await (
        await new Client().fetch(url, { method: 'POST', body: small, onUploadProgress: (p) => seen.push(p) })
      ).text()
      expect(seen).toEqual([{ loaded: want, total: want }])
    }
  })

  it('moves 1 GiB down and 1 GiB up with bounded memory', async () => {
    const GiB = 1024 * 1024 * 1024
    const chunk = Buffer.alloc(1024 * 1024, 3)
    let received = 0
    const url = await serve((req, res) => {
      if (req.method === 'PUT') {
        req.on('data', (c: Buffer) => {
          received += c.byteLength
        })
        req.on('end', () => res.end(String(received)))
        return
      }
      res.writeHead(200, { 'content-length': String(GiB) })
      let sent = 0
      const pump = () => {
        while (sent < GiB) {
          sent += chunk.byteLength
          if (!res.write(chunk)) return void res.once('drain', pump)
        }
        res.end()
      }
      pump()
    })
    const client = new Client()
    global.gc?.()
    const base = process.memoryUsage().rss
    let peak = base
    const res = await client.fetch(url)
    let total = 0
    const reader = (res.body as ReadableStream<Uint8Array>).getReader()
    for (;;) {
      const { done, value: part } = await reader.read()
      if (done) break
      total += part.byteLength
      if ((total & 0x3ffffff) < part.byteLength) peak = Math.max(peak, process.memoryUsage().rss)
    }
    expect(total).toBe(GiB)
    async function* upload() {
      for (let i = 0; i < 1024; i++) {
        if ((i & 63) === 0) peak = Math.max(peak, process.memoryUsage().rss)
        yield chunk
      }
    }
    const put = await client.fetch(url, { method: 'PUT', body: upload() })
    expect(await put.text()).toBe(String(GiB))
    expect(peak - base).toBeLessThan(256 * 1024 * 1024)
  })
})

describe('decompression', () => {
  const text = 'hypersock decompresses '.repeat(200)
  const zstd = execFileSync('zstd', ['-q', '-c'], { input: text })
  const encoded: Record<string, Buffer> = {
    gzip: zlib.gzipSync(text),
    deflate: zlib.deflateSync(text),
    br: zlib.brotliCompressSync(text),
    zstd,
  }

  it('decodes gzip, deflate, br and zstd transparently and asks for them', async () => {
    let accept = ''
    const url = await serve((req, res) => {
      accept = String(req.headers['accept-encoding'])
      const enc = (req.url ?? '/').slice(1)
      res.writeHead(200, { 'content-encoding': enc, 'content-length': String(encoded[enc]?.byteLength) })
      res.end(encoded[enc])
    })
    const client = new Client()
    for (const enc of Object.keys(encoded)) {
      const res = await client.fetch(`${url}/${enc}`)
      expect(await res.text(), enc).toBe(text)
      expect(res.headers.get('content-encoding'), enc).toBeNull()
    }
    expect(accept).toBe('gzip, deflate, br, zstd')
  })

  it('passes the raw body on with decompress: false', async () => {
    const url = await serve((req, res) => {
      res.writeHead(200, { 'content-encoding': 'gzip', 'x-accept': String(req.headers['accept-encoding'] ?? '') })
      res.end(encoded.gzip)
    })
    const res = await new Client({ decompress: false }).fetch(url)
    expect(res.headers.get('content-encoding')).toBe('gzip')
    expect(res.headers.get('x-accept')).toBe('')
    expect(zlib.gunzipSync(Buffer.from(await res.arrayBuffer())).toString()).toBe(text)
  })

  it('stops a decompression bomb at maxDecodedSize', async () => {
    const bomb = zlib.gzipSync(Buffer.alloc(64 * 1024 * 1024), { level: 9 })
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-encoding': 'gzip' })
      res.end(bomb)
    })
    const err = await new Client({ maxDecodedSize: 1024 * 1024 })
      .fetch(url)
      .then((r) => r.arrayBuffer())
      .catch((e: unknown) => e)
    expect((err as HypersockError).code).toBe('ERR_BODY_TOO_LARGE')
  })

  it('reports a corrupt compressed body as ERR_DECODE', async () => {
    const url = await serve((_req, res) => {
      res.writeHead(200, { 'content-encoding': 'gzip' })
      res.end(Buffer.from('this is not gzip at all'))
    })
    const err = await new Client()
      .fetch(url)
      .then((r) => r.text())
      .catch((e: unknown) => e)
    expect((err as HypersockError).code).toBe('ERR_DECODE')
  })
})

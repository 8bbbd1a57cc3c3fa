import http from 'node:http'
import { type Server, serve, sse } from 'hypersock'
import { describe, expect, it } from 'vitest'
import { deferred, nodeRequest, trackServers } from './helpers.js'

const track = trackServers()

async function start(options: Parameters<typeof serve>[0]): Promise<Server> {
  return track(await serve(options))
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

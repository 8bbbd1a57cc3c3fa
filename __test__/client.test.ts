import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { AbortError, Client, ConnectionError, fetch, HypersockError, InvalidArgumentError, serve } from 'hypersock'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { caught, freePort, trackServers } from './helpers.js'

const track = trackServers()

// A node:http peer that echoes what it got and records which client port each request came from.
let peer: http.Server
let base: string
const remotePorts: number[] = []

beforeAll(async () => {
  peer = http.createServer((req, res) => {
    remotePorts.push(req.socket.remotePort ?? 0)
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      if (req.url === '/json') {
        res.setHeader('content-type', 'application/json')
        res.end(JSON.stringify({ hello: 'world', n: 42 }))
        return
      }
      res.setHeader('set-cookie', ['sid=abc; Path=/', 'theme=dark'])
      res.setHeader('x-method', req.method ?? '')
      res.setHeader('x-got-header', String(req.headers['x-custom'] ?? ''))
      res.setHeader('x-content-type', String(req.headers['content-type'] ?? ''))
      res.statusCode = req.url === '/created' ? 201 : 200
      res.end(Buffer.concat(chunks))
    })
  })
  peer.listen(0, '127.0.0.1')
  await once(peer, 'listening')
  base = `http://127.0.0.1:${(peer.address() as AddressInfo).port}`
})

afterAll(() => {
  peer.close()
  peer.closeAllConnections()
})

describe('client: against a node:http server', () => {
  it('GETs with headers and reads status, headers, getSetCookie and text', async () => {
    const res = await fetch(`${base}/hello`, { headers: { 'x-custom': 'yes' } })
    expect(res.status).toBe(200)
    expect(res.ok).toBe(true)
    expect(res.url).toBe(`${base}/hello`)
    expect(res.headers.get('x-method')).toBe('GET')
    expect(res.headers.get('x-got-header')).toBe('yes')
    expect(res.headers.getSetCookie()).toEqual(['sid=abc; Path=/', 'theme=dark'])
    expect(await res.text()).toBe('')
    await expect(res.text()).rejects.toThrow(TypeError)
  })

  it('POSTs string, Buffer, Uint8Array and URLSearchParams bodies', async () => {
    const client = new Client()
    const s = await client.fetch(`${base}/created`, { method: 'POST', body: 'héllo' })
    expect(s.status).toBe(201)
    expect(s.headers.get('x-content-type')).toBe('text/plain;charset=UTF-8')
    expect(await s.text()).toBe('héllo')
    const b = await client.fetch(base, { method: 'PUT', body: Buffer.from([1, 2, 3]) })
    expect(b.headers.get('x-method')).toBe('PUT')
    expect([...new Uint8Array(await b.arrayBuffer())]).toEqual([1, 2, 3])
    const u = await client.fetch(base, { method: 'POST', body: new Uint8Array([250, 251]) })
    expect([...(await u.bytes())]).toEqual([250, 251])
    const f = await client.fetch(base, { method: 'POST', body: new URLSearchParams({ a: '1', b: 'x y' }) })
    expect(f.headers.get('x-content-type')).toBe('application/x-www-form-urlencoded;charset=UTF-8')
    expect(await f.text()).toBe('a=1&b=x+y')
  })

  it('parses JSON', async () => {
    expect(await (await fetch(`${base}/json`)).json()).toEqual({ hello: 'world', n: 42 })
  })

  it('reuses one pooled keep-alive connection for sequential requests', async () => {
    const client = new Client()
    remotePorts.length = 0
    for (let i = 0; i < 20; i++) {
      const res = await client.fetch(`${base}/n${i}`)
      await res.text()
    }
    expect(remotePorts.length).toBe(20)
    expect(new Set(remotePorts).size).toBe(1)
  })

  it('sends default headers from the client options unless the request overrides them', async () => {
    const client = new Client({ headers: { 'x-custom': 'default' } })
    expect((await client.fetch(base)).headers.get('x-got-header')).toBe('default')
    expect((await client.fetch(base, { headers: { 'X-Custom': 'mine' } })).headers.get('x-got-header')).toBe('mine')
  })
})

describe('client: errors carry stable codes', () => {
  it('rejects a refused connection with ECONNREFUSED', async () => {
    const port = await freePort()
    const err = await fetch(`http://127.0.0.1:${port}/`).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ConnectionError)
    expect(err).toBeInstanceOf(HypersockError)
    expect((err as HypersockError).code).toBe('ECONNREFUSED')
  })

  it('rejects invalid and unsupported URLs with ERR_INVALID_URL', async () => {
    for (const url of ['not a url', 'http://', 'ftp://127.0.0.1/file']) {
      const err = await fetch(url).catch((e: unknown) => e)
      expect(err, url).toBeInstanceOf(InvalidArgumentError)
      expect((err as HypersockError).code, url).toBe('ERR_INVALID_URL')
    }
  })

  it('rejects invalid header names with ERR_INVALID_ARG_VALUE', async () => {
    const err = await fetch(base, { headers: [['bad header', 'x']] }).catch((e: unknown) => e)
    expect((err as HypersockError).code).toMatch(/^ERR_INVALID/)
  })

  it('rejects with AbortError when the signal is already aborted or aborts in flight', async () => {
    const pre = await fetch(base, { signal: AbortSignal.abort() }).catch((e: unknown) => e)
    expect(pre).toBeInstanceOf(AbortError)
    expect((pre as AbortError).code).toBe('ABORT_ERR')
    // A server that never answers, so the abort lands while waiting for headers.
    const stalled = http.createServer(() => {})
    stalled.listen(0, '127.0.0.1')
    await once(stalled, 'listening')
    const ctl = new AbortController()
    const pending = fetch(`http://127.0.0.1:${(stalled.address() as AddressInfo).port}/`, { signal: ctl.signal })
    stalled.once('request', () => ctl.abort())
    const err = await pending.catch((e: unknown) => e)
    expect((err as AbortError).code).toBe('ABORT_ERR')
    stalled.closeAllConnections()
    stalled.close()
  })

  it('reports a whole-request timeout as ETIMEDOUT', async () => {
    const stalled = http.createServer(() => {})
    stalled.listen(0, '127.0.0.1')
    await once(stalled, 'listening')
    const client = new Client({ timeout: 50 })
    const err = await client.fetch(`http://127.0.0.1:${(stalled.address() as AddressInfo).port}/`).catch((e) => e)
    expect((err as HypersockError).code).toBe('ETIMEDOUT')
    stalled.closeAllConnections()
    stalled.close()
  })
})

describe('client: against the hypersock server', () => {
  it('round-trips through both halves of hypersock', async () => {
    const server = await serve({
      async fetch(req) {
        return { headers: { 'x-echo-method': req.method }, body: await req.text() }
      },
    })
    try {
      const client = new Client()
      const res = await client.fetch(new URL('/x', server.url), { method: 'PATCH', body: 'data' })
      expect(res.headers.get('x-echo-method')).toBe('PATCH')
      expect(await res.text()).toBe('data')
    } finally {
      await server.stop()
    }
  })
})

describe('client: fetch(Request)', () => {
  it('takes a WHATWG Request: its URL, method, headers, body and signal; init fields win', async () => {
    const server = track(
      await serve({
        fetch: async (req) =>
          Response.json({ method: req.method, x: req.headers.get('x-from'), body: await req.text(), path: req.path }),
      }),
    )
    const url = `http://127.0.0.1:${server.port}/r?q=1`
    const request = new Request(url, { method: 'POST', headers: { 'x-from': 'request' }, body: 'payload' })
    expect(await (await fetch(request)).json()).toEqual({ method: 'POST', x: 'request', body: 'payload', path: '/r' })
    const overridden = new Request(url, { method: 'POST', headers: { 'x-from': 'request' }, body: 'a' })
    expect(await (await fetch(overridden, { headers: { 'x-from': 'init' }, method: 'PUT' })).json()).toEqual({
      method: 'PUT',
      x: 'init',
      body: 'a',
      path: '/r',
    })
    const aborted = new AbortController()
    aborted.abort()
    const e = await caught(() => fetch(new Request(url, { signal: aborted.signal })))
    expect(e.code).toBe('ABORT_ERR')
  })
})

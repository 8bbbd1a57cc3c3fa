// hypersock/testing's MockAgent: the client's requests answered from interceptors, through the
// public fetch and Client, with a real local server for what passes through to the network.
import { AbortError, Client, ConnectionError, fetch, serve } from 'hypersock'
import { MockAgent } from 'hypersock/testing'
import { afterEach, describe, expect, it } from 'vitest'
import { caught, trackServers } from './helpers.js'

const track = trackServers()
let agent: MockAgent | undefined
afterEach(() => agent?.uninstall())

function mock(): MockAgent {
  agent = new MockAgent().install()
  return agent
}

describe('MockAgent', () => {
  it('answers fetch and every Client from interceptors: JSON, text, status, headers', async () => {
    const m = mock()
    m.disableNetConnect()
    m.intercept({ origin: 'https://api.test', path: '/users' }).reply(200, [{ id: 1 }])
    m.intercept({ origin: 'https://api.test', path: /^\/text/, method: 'get' }).reply(202, 'plain', {
      headers: { 'X-Mocked': 'yes' },
    })
    const users = await fetch('https://api.test/users')
    expect([users.status, users.headers.get('content-type'), await users.json()]).toEqual([
      200,
      'application/json',
      [{ id: 1 }],
    ])
    const text = await new Client().fetch('https://api.test/text?x=1')
    expect([text.status, text.headers.get('x-mocked'), await text.text()]).toEqual([202, 'yes', 'plain'])
    m.assertNoPendingInterceptors()
  })

  it('matches method, headers and body; a reply function sees the request', async () => {
    const m = mock()
    m.disableNetConnect()
    m.intercept({
      origin: 'http://svc.test:8080',
      path: '/orders',
      method: 'POST',
      headers: { authorization: /^Bearer / },
      body: (b) => JSON.parse(b).qty > 0,
    }).reply(201, (req) => ({ got: JSON.parse(req.body), auth: req.headers.get('authorization') }))
    const res = await fetch('http://svc.test:8080/orders', {
      method: 'POST',
      headers: { authorization: 'Bearer t' },
      body: JSON.stringify({ qty: 2 }),
    })
    expect([res.status, await res.json()]).toEqual([201, { got: { qty: 2 }, auth: 'Bearer t' }])
    const unmatched = await caught(() =>
      fetch('http://svc.test:8080/orders', { method: 'POST', body: JSON.stringify({ qty: 2 }) }),
    )
    expect(unmatched).toBeInstanceOf(ConnectionError)
    expect(unmatched.code).toBe('ERR_MOCK_NOT_MATCHED')
  })

  it('times, persist, errors, delays that a signal cuts short', async () => {
    const m = mock()
    m.disableNetConnect()
    m.intercept({ origin: 'https://a.test', path: '/twice' }).reply(200, 'ok').times(2)
    m.intercept({ origin: 'https://a.test', path: '/always' }).reply(204).persist()
    m.intercept({ origin: 'https://a.test', path: '/down' }).replyWithError('ECONNRESET')
    m.intercept({ origin: 'https://a.test', path: '/slow' }).reply(200, 'late').delay(60_000)
    for (let i = 0; i < 2; i++) expect(await (await fetch('https://a.test/twice')).text()).toBe('ok')
    expect((await caught(() => fetch('https://a.test/twice'))).code).toBe('ERR_MOCK_NOT_MATCHED')
    for (let i = 0; i < 3; i++) expect((await fetch('https://a.test/always')).status).toBe(204)
    const reset = await caught(() => fetch('https://a.test/down'))
    expect([reset instanceof ConnectionError, reset.code]).toEqual([true, 'ECONNRESET'])
    const controller = new AbortController()
    const slow = fetch('https://a.test/slow', { signal: controller.signal })
    controller.abort()
    const aborted = await caught(() => slow)
    expect(aborted).toBeInstanceOf(AbortError)
    m.assertNoPendingInterceptors()
  })

  it('assertNoPendingInterceptors lists what was not used', async () => {
    const m = mock()
    m.intercept({ origin: 'https://b.test', path: '/never', method: 'DELETE' }).reply(200)
    m.intercept({ origin: 'https://b.test', path: '/kept' }).reply(200).persist()
    const e = await caught(() => m.assertNoPendingInterceptors())
    expect(e.code).toBe('ERR_MOCK_PENDING')
    expect(e.message).toContain('DELETE https://b.test/never')
    expect(e.message).toContain('GET https://b.test/kept')
  })

  it('lets unmatched requests through to allowed hosts only, and uninstall restores the network', async () => {
    const server = track(await serve({ fetch: () => 'real' }))
    const local = `http://127.0.0.1:${server.port}/`
    const m = mock()
    expect(await (await fetch(local)).text()).toBe('real')
    m.disableNetConnect()
    expect((await caught(() => fetch(local))).code).toBe('ERR_MOCK_NOT_MATCHED')
    m.enableNetConnect('127.0.0.1')
    expect(await (await fetch(local)).text()).toBe('real')
    expect((await caught(() => fetch('http://elsewhere.test/'))).code).toBe('ERR_MOCK_NOT_MATCHED')
    m.uninstall()
    expect(await (await fetch(local)).text()).toBe('real')
  })

  it('refuses unknown intercept options and statuses', async () => {
    const m = mock()
    expect((await caught(() => m.intercept({ origin: 'https://c.test', pth: '/' } as never))).message).toContain(
      "did you mean 'path'",
    )
    expect((await caught(() => m.intercept({ origin: 'https://c.test', path: '/' }).reply(42))).code).toBe(
      'ERR_INVALID_ARG_VALUE',
    )
  })
})

describe('MockAgent from CommonJS', () => {
  it("require('hypersock/testing') intercepts require('hypersock')'s fetch", async () => {
    const { execFile } = await import('node:child_process')
    const script = `
      const { fetch } = require('hypersock')
      const { MockAgent } = require('hypersock/testing')
      const m = new MockAgent().install()
      m.disableNetConnect()
      m.intercept({ origin: 'https://cjs.test', path: '/' }).reply(200, 'from cjs')
      fetch('https://cjs.test/').then((r) => r.text()).then((t) => { console.log(t); process.exit(0) },
        (e) => { console.error(e); process.exit(1) })`
    const out = await new Promise<string>((resolve, reject) =>
      execFile(process.execPath, ['-e', script], { cwd: process.cwd() }, (err, stdout, stderr) =>
        err ? reject(new Error(stderr)) : resolve(stdout),
      ),
    )
    expect(out.trim()).toBe('from cjs')
  })
})

// hypersock/testing's MockAgent: the client's requests answered from interceptors, through the
// public fetch and Client, with a real local server for what passes through to the network.
import {
  AbortError,
  Client,
  ConnectionError,
  EventSource,
  type EventSourceErrorEvent,
  type EventSourceInit,
  events,
  fetch,
  HttpError,
  serve,
  sse,
  TlsError,
} from 'hypersock'
import { MockAgent } from 'hypersock/testing'
import { afterEach, describe, expect, it } from 'vitest'
import { caught, deferred, trackServers } from './helpers.js'

const track = trackServers()
let agent: MockAgent | undefined
const sources: EventSource[] = []
afterEach(() => {
  for (const es of sources.splice(0)) es.close()
  agent?.uninstall()
})

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

const STREAM = { headers: { 'content-type': 'text/event-stream' } }
const ORIGIN = 'https://sse.test'

function source(path: string, init?: EventSourceInit): EventSource {
  const es = new EventSource(path.startsWith('/') ? ORIGIN + path : path, init)
  sources.push(es)
  return es
}

/** The first `n` events (of any type) of `es`, read through its async iterator (which closes it). */
async function take(es: EventSource, n: number): Promise<MessageEvent[]> {
  const got: MessageEvent[] = []
  for await (const ev of es) {
    got.push(ev)
    if (got.length === n) break
  }
  return got
}

/** The error event that ends `es` for good (the one with `error` set). */
function failure(es: EventSource): Promise<EventSourceErrorEvent> {
  const d = deferred<EventSourceErrorEvent>()
  es.addEventListener('error', (ev) => {
    if ((ev as EventSourceErrorEvent).error !== undefined) d.resolve(ev as EventSourceErrorEvent)
  })
  return d.promise
}

/** Live timers of this process (each `setTimeout` not yet fired or cleared). */
function timers(): number {
  return process.getActiveResourcesInfo().filter((r) => r === 'Timeout').length
}

describe('MockAgent and EventSource', () => {
  it('serves an EventSource from a mocked stream: types, ids, multi-line data, comments, any line end', async () => {
    const m = mock()
    m.disableNetConnect()
    m.intercept({
      origin: ORIGIN,
      path: '/feed',
      headers: { accept: 'text/event-stream', 'cache-control': 'no-cache', 'x-token': 't1' },
    }).reply(
      200,
      '\uFEFF: a comment\r\nevent: add\r\ndata: line 1\r\ndata:line 2\r\nid: 7\r\n\r\n' +
        'data: plain\rid: a\0b\r\r' + // an id with NUL is ignored
        'data\n\n' + // one empty data line: an event with empty data
        'event: nothing\n\n' + // no data: not dispatched
        'id\ndata: no id\n\n' + // an empty id resets it
        'data: unfinished', // the body ends before the blank line: not dispatched
      { headers: { 'Content-Type': 'text/event-stream; charset=utf-8' } },
    )
    const es = source('/feed', { headers: { 'x-token': 't1' } })
    const opened = deferred<number>()
    es.onopen = () => opened.resolve(es.readyState)
    const added: string[] = []
    es.addEventListener('add', (ev) => added.push((ev as MessageEvent).data))
    const got = await take(es, 4)
    expect(await opened.promise).toBe(EventSource.OPEN)
    expect(got.every((ev) => ev instanceof MessageEvent && ev.origin === ORIGIN)).toBe(true)
    expect(got.map((ev) => [ev.type, ev.data, ev.lastEventId])).toEqual([
      ['add', 'line 1\nline 2', '7'],
      ['message', 'plain', '7'],
      ['message', '', '7'],
      ['message', 'no id', ''],
    ])
    expect(added).toEqual(['line 1\nline 2'])
    expect(es.readyState).toBe(EventSource.CLOSED)
    m.assertNoPendingInterceptors()
  })

  it('reconnects when a mocked body ends: retry, Last-Event-ID, the next interceptor, times and persist', async () => {
    const m = mock()
    m.disableNetConnect()
    const lastIds: (string | null)[] = []
    const answer = (body: string) => (req: { headers: Headers }) => {
      lastIds.push(req.headers.get('last-event-id'))
      return body
    }
    m.intercept({ origin: ORIGIN, path: '/r' }).reply(200, answer('retry: 5\nid: 1\ndata: one\n\n'), STREAM)
    m.intercept({ origin: ORIGIN, path: '/r' }).reply(200, answer('id: 2\ndata: two\n\n'), STREAM).times(2)
    m.intercept({ origin: ORIGIN, path: '/r' }).reply(200, answer('data: rest\n\n'), STREAM).persist()
    // A minute between reconnections unless the stream's `retry: 5` is honoured.
    const es = source('/r', { retry: 60_000 })
    const lost: [string, number][] = []
    es.onerror = (ev) => lost.push([ev.message, es.readyState])
    const got = await take(es, 5)
    expect(got.map((ev) => `${ev.data}#${ev.lastEventId}`)).toEqual(['one#1', 'two#2', 'two#2', 'rest#2', 'rest#2'])
    expect(lastIds).toEqual([null, '1', '2', '2', '2'])
    expect(lost.slice(0, 4)).toEqual(Array(4).fill(['the server ended the stream', EventSource.CONNECTING]))
    expect(m.pendingInterceptors()).toEqual([])
  })

  it('starts from init.lastEventId, takes replyWithError as a lost connection, fails once nothing matches', async () => {
    const m = mock()
    m.disableNetConnect()
    m.intercept({ origin: ORIGIN, path: '/flaky' }).replyWithError('ECONNRESET', 'mocked reset')
    m.intercept({ origin: ORIGIN, path: '/flaky', headers: { 'last-event-id': 'start' } }).reply(
      200,
      'data: back\n\n',
      STREAM,
    )
    const es = source('/flaky', { retry: 1, lastEventId: 'start' })
    const seen: string[] = []
    es.onopen = () => seen.push('open')
    es.onmessage = (ev) => seen.push(`${ev.data}#${ev.lastEventId}`)
    es.onerror = (ev) =>
      seen.push(ev.error === undefined ? `lost: ${ev.message}` : `failed: ${(ev.error as { code: string }).code}`)
    await failure(es)
    expect(seen).toEqual([
      'lost: mocked reset',
      'open',
      'back#start',
      'lost: the server ended the stream',
      'failed: ERR_MOCK_NOT_MATCHED', // the interceptors are used up and the network is off
    ])
    expect(es.readyState).toBe(EventSource.CLOSED)
    m.assertNoPendingInterceptors()
  })

  it('maxReconnects bounds the mocked losses in a row (ECONNRESET); other errors fail at once', async () => {
    const m = mock()
    m.disableNetConnect()
    m.intercept({ origin: ORIGIN, path: '/down' }).replyWithError('ECONNREFUSED').persist()
    const es = source('/down', { retry: 1, maxReconnects: 2 })
    const lost: string[] = []
    es.onerror = (ev) => {
      if (ev.error === undefined) lost.push(ev.message)
    }
    const ended = await failure(es)
    expect(lost).toEqual(['mocked ECONNREFUSED', 'mocked ECONNREFUSED'])
    expect(ended.error).toBeInstanceOf(ConnectionError)
    expect((ended.error as { code: string }).code).toBe('ECONNRESET')
    expect(ended.message).toContain('lost 3 times in a row: mocked ECONNREFUSED')
    expect(es.readyState).toBe(EventSource.CLOSED)

    // An error that is no lost connection (TLS here) fails it at once, as it would the native stream.
    m.intercept({ origin: ORIGIN, path: '/tls' }).replyWithError('ERR_TLS_CERT_EXPIRED').persist()
    const tls = source('/tls', { retry: 1 })
    const errors: EventSourceErrorEvent[] = []
    tls.onerror = (ev) => errors.push(ev)
    const tlsEnded = await failure(tls)
    expect(tlsEnded.error).toBeInstanceOf(TlsError)
    expect(errors).toEqual([tlsEnded])
  })

  it('a mocked answer that is not 200 text/event-stream fails for good; 204 closes', async () => {
    const m = mock()
    m.disableNetConnect()
    m.intercept({ origin: ORIGIN, path: '/500' }).reply(500, 'data: no\n\n', STREAM)
    m.intercept({ origin: ORIGIN, path: '/html' }).reply(200, 'data: no\n\n', {
      headers: { 'content-type': 'text/html' },
    })
    m.intercept({ origin: ORIGIN, path: '/json' }).reply(200, { data: 'no' })
    m.intercept({ origin: ORIGIN, path: '/204' }).reply(204)
    for (const [path, message] of [
      ['/500', 'answered 500 with content type "text/event-stream"'],
      ['/html', 'answered 200 with content type "text/html"'],
      ['/json', 'answered 200 with content type "application/json"'],
    ]) {
      const es = source(path as string)
      const opened: Event[] = []
      es.onopen = (ev) => opened.push(ev)
      const ended = await failure(es)
      expect(ended.error).toBeInstanceOf(HttpError)
      expect((ended.error as { code: string }).code).toBe('ERR_HTTP_PROTOCOL')
      expect(ended.message).toContain(message)
      expect([es.readyState, opened.length]).toEqual([EventSource.CLOSED, 0])
      // The async iterator ends with the same error.
      expect(await caught(() => take(es, 1))).toBe(ended.error)
    }
    const iterated: MessageEvent[] = []
    for await (const ev of events(`${ORIGIN}/204`)) iterated.push(ev)
    expect(iterated).toEqual([])
    m.assertNoPendingInterceptors()
  })

  it('with net connect disabled, an unmatched EventSource fails with ERR_MOCK_NOT_MATCHED', async () => {
    const m = mock()
    m.disableNetConnect()
    m.intercept({ origin: ORIGIN, path: '/other' }).reply(200, 'data: x\n\n', STREAM)
    const es = source('/missing')
    const ended = await failure(es)
    expect(ended.error).toBeInstanceOf(ConnectionError)
    expect((ended.error as { code: string }).code).toBe('ERR_MOCK_NOT_MATCHED')
    expect(ended.message).toContain(`GET ${ORIGIN}/missing`)
    expect(es.readyState).toBe(EventSource.CLOSED)
  })

  it('an unmatched connection reaches a real server, also a reconnection after a mocked stream', async () => {
    const lastIds: (string | null)[] = []
    const server = track(
      await serve({
        fetch: (req) => {
          lastIds.push(req.headers.get('last-event-id'))
          return sse([{ id: 'r', data: `real after ${req.headers.get('last-event-id')}` }])
        },
      }),
    )
    const local = `http://127.0.0.1:${server.port}`
    const m = mock()
    m.disableNetConnect()
    m.enableNetConnect('127.0.0.1')
    m.intercept({ origin: local, path: '/mocked' }).reply(200, 'retry: 1\nid: 5\ndata: mocked\n\n', STREAM)
    const direct = await take(source(`${local}/direct`, { lastEventId: 'x' }), 1)
    expect(direct.map((ev) => [ev.data, ev.lastEventId, ev.origin])).toEqual([['real after x', 'r', local]])
    // Served by the mock first; its reconnection (after its retry: 1) finds no interceptor left.
    const handedOver = await take(source(`${local}/mocked`, { retry: 60_000 }), 2)
    expect(handedOver.map((ev) => `${ev.data}#${ev.lastEventId}`)).toEqual(['mocked#5', 'real after 5#r'])
    expect(lastIds.slice(0, 2)).toEqual(['x', '5'])
    m.assertNoPendingInterceptors()
  })

  it('close() stops a pending reconnection delay and a delayed mocked answer', async () => {
    const m = mock()
    m.disableNetConnect()
    m.intercept({ origin: ORIGIN, path: '/once' }).reply(200, 'data: hi\n\n', STREAM)
    m.intercept({ origin: ORIGIN, path: '/once' }).reply(200, 'data: again\n\n', STREAM)
    const es = source('/once', { retry: 60_000 })
    const lost = deferred<void>()
    es.onerror = () => lost.resolve()
    await lost.promise // the body ended: now waiting a minute to reconnect
    let before = timers()
    es.close()
    expect(timers()).toBe(before - 1)
    expect(es.readyState).toBe(EventSource.CLOSED)
    expect(m.pendingInterceptors()).toHaveLength(1) // the second answer was never asked for

    m.intercept({ origin: ORIGIN, path: '/slow' }).reply(200, 'data: late\n\n', STREAM).delay(60_000)
    before = timers()
    const slow = source('/slow') // the agent takes the request at once and waits a minute
    expect(timers()).toBe(before + 1)
    const seen: string[] = []
    slow.onopen = () => seen.push('open')
    slow.onerror = () => seen.push('error')
    slow.close()
    expect(timers()).toBe(before)
    expect(await take(slow, 1)).toEqual([])
    expect(seen).toEqual([])
  })

  it('maxEventSize: a mocked line or event over the limit fails for good with ERR_SSE_EVENT_TOO_LARGE', async () => {
    const m = mock()
    m.disableNetConnect()
    m.intercept({ origin: ORIGIN, path: '/line' }).reply(200, `data: ok\n\ndata: ${'x'.repeat(100)}\n\n`, STREAM)
    m.intercept({ origin: ORIGIN, path: '/event' }).reply(
      200,
      `data: ${'d'.repeat(40)}\ndata: ${'d'.repeat(40)}\n\n`, // each line fits, the event does not
      STREAM,
    )
    for (const path of ['/line', '/event']) {
      const es = source(path, { maxEventSize: 64 })
      const data: string[] = []
      es.onmessage = (ev) => data.push(ev.data)
      const ended = await failure(es)
      expect(ended.error).toBeInstanceOf(HttpError)
      expect((ended.error as { code: string }).code).toBe('ERR_SSE_EVENT_TOO_LARGE')
      expect(ended.message).toContain('larger than the limit of 64 bytes')
      expect(data).toEqual(path === '/line' ? ['ok'] : [])
      expect(es.readyState).toBe(EventSource.CLOSED)
    }
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

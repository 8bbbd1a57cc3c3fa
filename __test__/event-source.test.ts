import type http from 'node:http'
import { Client, CookieJar, EventSource, type EventSourceErrorEvent, events } from 'hypersock'
import { describe, expect, it } from 'vitest'
import { deferred, nodeHttpPeers } from './helpers.js'

const { serve, cleanups } = nodeHttpPeers()

function sse(res: http.ServerResponse): void {
  res.writeHead(200, { 'content-type': 'text/event-stream', 'cache-control': 'no-cache' })
}

describe('EventSource', () => {
  it('delivers message and named events with multi-line data, ids and the open state', async () => {
    const url = await serve((req, res) => {
      expect(req.headers.accept).toBe('text/event-stream')
      sse(res)
      res.write(': hello\n\ndata: first\n\n')
      res.write('event: update\ndata: line 1\ndata: line 2\nid: 42\n\n')
      res.write('data: after\n\n')
    })
    const es = new EventSource(url)
    cleanups.push(() => es.close())
    expect(es.readyState).toBe(EventSource.CONNECTING)
    const opened = deferred<void>()
    es.onopen = () => opened.resolve()
    const messages: MessageEvent[] = []
    const updates: MessageEvent[] = []
    const done = deferred<void>()
    es.onmessage = (ev) => {
      messages.push(ev)
      if (messages.length === 2) done.resolve()
    }
    es.addEventListener('update', (ev) => updates.push(ev as MessageEvent))
    await opened.promise
    expect(es.readyState).toBe(EventSource.OPEN)
    await done.promise
    expect(messages.map((m) => [m.data, m.lastEventId])).toEqual([
      ['first', ''],
      ['after', '42'],
    ])
    expect(updates.map((m) => [m.type, m.data, m.lastEventId, m.origin])).toEqual([
      ['update', 'line 1\nline 2', '42', new URL(url).origin],
    ])
    es.close()
    expect(es.readyState).toBe(EventSource.CLOSED)
  })

  it('reconnects after the retry delay and resumes with Last-Event-ID', async () => {
    const seenIds: (string | undefined)[] = []
    const url = await serve((req, res) => {
      seenIds.push(req.headers['last-event-id'] as string | undefined)
      sse(res)
      if (seenIds.length === 1) {
        res.end('retry: 20\nid: 1\ndata: one\n\n')
        return
      }
      res.write(`id: ${seenIds.length}\ndata: again\n\n`)
    })
    const es = new EventSource(url)
    cleanups.push(() => es.close())
    const errors: EventSourceErrorEvent[] = []
    es.onerror = (ev) => errors.push(ev)
    const got: string[] = []
    for await (const ev of es) {
      got.push(`${ev.data}#${ev.lastEventId}`)
      if (got.length === 2) break
    }
    expect(got).toEqual(['one#1', 'again#2'])
    expect(seenIds).toEqual([undefined, '1'])
    expect(errors.length).toBe(1)
    expect(es.readyState).toBe(EventSource.CLOSED)
  })

  it('fails for good on a wrong status or content type, and closes on 204', async () => {
    const url = await serve((req, res) => {
      if (req.url === '/html') {
        res.writeHead(200, { 'content-type': 'text/html' })
        return res.end('<p>no</p>')
      }
      res.writeHead(204)
      res.end()
    })
    const bad = new EventSource(`${url}/html`)
    const failed = deferred<EventSourceErrorEvent>()
    bad.onerror = (ev) => failed.resolve(ev)
    const ev = await failed.promise
    expect(bad.readyState).toBe(EventSource.CLOSED)
    expect((ev.error as { code: string }).code).toBe('ERR_HTTP_PROTOCOL')
    const iterated: unknown[] = []
    for await (const e of events(`${url}/no-content`)) iterated.push(e)
    expect(iterated).toEqual([])
  })

  it('close() ends a pending stream and stops reconnecting', async () => {
    let connections = 0
    const url = await serve((_req, res) => {
      connections++
      sse(res)
      res.write('data: hi\n\n')
    })
    const es = new EventSource(url, { retry: 10 })
    const first = deferred<void>()
    es.onmessage = () => first.resolve()
    await first.promise
    es.close()
    await new Promise((r) => setTimeout(r, 100))
    expect(connections).toBe(1)
    expect(es.readyState).toBe(EventSource.CLOSED)
  })

  it('connects through a given client with its cookie jar and headers', async () => {
    const url = await serve((req, res) => {
      sse(res)
      res.write(`data: ${req.headers.cookie} ${req.headers['x-token']}\n\n`)
    })
    const jar = new CookieJar()
    jar.setCookie('sid=abc', url)
    const iterator = events(url, { client: new Client({ cookieJar: jar }), headers: { 'x-token': 't1' } })
    const first = await iterator.next()
    expect((first.value as MessageEvent).data).toBe('sid=abc t1')
    await iterator.return(undefined)
  })

  it("uses its client's headers (its own win) and resolves a relative URL against the client's baseURL", async () => {
    const url = await serve((req, res) => {
      sse(res)
      res.write(`data: ${req.url} ${req.headers['x-app']} ${req.headers['x-token']}\n\n`)
    })
    const client = new Client({ baseURL: url, headers: { 'x-app': 'a1', 'x-token': 'from-client' } })
    const iterator = events('/feed?x=1', { client, headers: { 'X-Token': 'own' } })
    const first = await iterator.next()
    expect((first.value as MessageEvent).data).toBe('/feed?x=1 a1 own')
    await iterator.return(undefined)
  })
})

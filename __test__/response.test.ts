// hypersock's Response: a real WHATWG Response whose string or bytes body is kept as given
// until read, and which a server sends without going through a stream.
import { Response, serve } from 'hypersock'
import { describe, expect, it } from 'vitest'
import { rawExchange, trackServers } from './helpers.js'

const track = trackServers()

describe('Response', () => {
  it('is a global Response with the same status, headers and default content type', async () => {
    const ours = new Response('hi', { status: 201, statusText: 'Made', headers: { 'x-a': '1' } })
    const theirs = new globalThis.Response('hi', { status: 201, statusText: 'Made', headers: { 'x-a': '1' } })
    expect(ours instanceof globalThis.Response).toBe(true)
    expect(theirs instanceof Response).toBe(true)
    expect([ours.status, ours.statusText, ours.ok, ours.type]).toEqual([
      theirs.status,
      theirs.statusText,
      theirs.ok,
      theirs.type,
    ])
    expect([...ours.headers]).toEqual([...theirs.headers])
    expect(await ours.text()).toBe(await theirs.text())
  })

  it('reads, clones and tracks bodyUsed as the global class does', async () => {
    const res = new Response(new Uint8Array([1, 2, 3]))
    expect(res.bodyUsed).toBe(false)
    const copy = res.clone()
    expect(res.body).toBeInstanceOf(ReadableStream)
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(new Uint8Array([1, 2, 3]))
    expect(res.bodyUsed).toBe(true)
    await expect(res.text()).rejects.toThrow(TypeError)
    expect(() => res.clone()).toThrow(TypeError)
    expect([...new Uint8Array(await copy.arrayBuffer())]).toEqual([1, 2, 3])
    expect(new Response(null).body).toBeNull()
    expect(await new Response(new ArrayBuffer(2)).arrayBuffer()).toEqual(new ArrayBuffer(2))
    const form = new Response(new URLSearchParams({ a: '1' }))
    expect(form.headers.get('content-type')).toBe('application/x-www-form-urlencoded;charset=UTF-8')
    expect(await form.text()).toBe('a=1')
  })

  it('refuses a body with a null-body status, and json() sets the type', async () => {
    expect(() => new Response('x', { status: 204 })).toThrow(TypeError)
    expect(() => new Response('x', { status: 99 })).toThrow(RangeError)
    const json = Response.json({ a: [1] }, { status: 202, headers: { 'x-b': '2' } })
    expect([json.status, json.headers.get('content-type'), json.headers.get('x-b')]).toEqual([
      202,
      'application/json',
      '2',
    ])
    expect(await json.json()).toEqual({ a: [1] })
  })

  it('is sent by a server as given, and after being read or cloned too', async () => {
    const server = track(
      await serve({
        async fetch(req) {
          if (req.path === '/text') return new Response('héllo', { headers: { 'set-cookie': 'a=1' } })
          if (req.path === '/bytes') return new Response(new Uint8Array([0, 255]), { status: 202 })
          if (req.path === '/read') {
            const res = new Response('read first')
            const copy = res.clone()
            await res.text()
            return copy
          }
          if (req.path === '/used') {
            const res = new Response('used')
            await res.text()
            return res
          }
          return Response.json({ path: req.path })
        },
      }),
    )
    const text = await fetch(new URL('/text', server.url))
    expect([text.status, text.headers.get('content-type'), text.headers.get('set-cookie')]).toEqual([
      200,
      'text/plain;charset=UTF-8',
      'a=1',
    ])
    expect(await text.text()).toBe('héllo')
    const bytes = await fetch(new URL('/bytes', server.url))
    expect([bytes.status, [...new Uint8Array(await bytes.arrayBuffer())]]).toEqual([202, [0, 255]])
    expect(await (await fetch(new URL('/read', server.url))).text()).toBe('read first')
    expect(await (await fetch(new URL('/json', server.url))).json()).toEqual({ path: '/json' })
    // A body already read cannot be sent: the handler's error is a 500, as with the global class.
    const used = await fetch(new URL('/used', server.url))
    expect(used.status).toBe(500)
  })

  it('sends a custom statusText as the HTTP/1.1 reason phrase, and the usual one otherwise', async () => {
    const server = track(
      await serve({
        fetch(req) {
          const body = req.path.includes('stream')
            ? new ReadableStream({
                start(c) {
                  c.enqueue(new TextEncoder().encode('streamed'))
                  // (Unless the server cancelled it first: the client may have gone.)
                  setTimeout(() => {
                    try {
                      c.close()
                    } catch {}
                  }, 10)
                },
              })
            : 'x'
          if (req.path.startsWith('/ours')) return new Response('x', { status: 201, statusText: 'Made It' })
          if (req.path.startsWith('/global'))
            return new globalThis.Response(body, { status: 404, statusText: 'Nothing Here' })
          if (req.path === '/usual') return new Response('x', { status: 200, statusText: 'OK' })
          return new Response('x', { status: 418 })
        },
      }),
    )
    const line = async (path: string) =>
      (await rawExchange(server.port, `GET ${path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n`)).split('\r\n')[0]
    expect(await line('/ours')).toBe('HTTP/1.1 201 Made It')
    expect(await line('/global')).toBe('HTTP/1.1 404 Nothing Here')
    expect(await line('/global-stream')).toBe('HTTP/1.1 404 Nothing Here')
    expect(await line('/usual')).toBe('HTTP/1.1 200 OK')
    expect(await line('/plain')).toBe("HTTP/1.1 418 I'm a teapot")
    // A client sees it too.
    expect((await fetch(new URL('/ours', server.url))).statusText).toBe('Made It')
  })
})

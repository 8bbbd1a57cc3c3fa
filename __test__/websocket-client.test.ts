// The WebSocket client beyond WHATWG: ping, pong and their events, terminate; and the WHATWG
// exceptions for bad URLs and close codes (DOMExceptions that also carry hypersock's `code`);
// followRedirects.
import { once } from 'node:events'
import http from 'node:http'
import type net from 'node:net'
import { WebSocket } from 'hypersock'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocketServer } from 'ws'
import { closeEvent } from './helpers.js'

const peers = new Set<WebSocketServer>()
afterEach(async () => {
  for (const wss of peers) {
    for (const c of wss.clients) c.terminate()
    await new Promise((r) => wss.close(r))
  }
  peers.clear()
})

/** A `ws` server on loopback, closed after the test. */
async function peer(): Promise<{ wss: WebSocketServer; url: string }> {
  const wss = new WebSocketServer({ host: '127.0.0.1', port: 0 })
  peers.add(wss)
  await once(wss, 'listening')
  return { wss, url: `ws://127.0.0.1:${(wss.address() as net.AddressInfo).port}/` }
}

function opened(ws: WebSocket): Promise<unknown> {
  return new Promise((r) => ws.addEventListener('open', r, { once: true }))
}

function nextEvent(ws: WebSocket, type: string): Promise<MessageEvent> {
  return new Promise((r) => ws.addEventListener(type, (e) => r(e as MessageEvent), { once: true }))
}

describe('WebSocket client: ping, pong, terminate', () => {
  it("ping(data) reaches the server, whose pong comes back as a 'pong' event", async () => {
    const p = await peer()
    const pinged = new Promise<Buffer>((r) => p.wss.once('connection', (s) => s.on('ping', r)))
    const ws = new WebSocket(p.url)
    await opened(ws)
    const pong = nextEvent(ws, 'pong')
    ws.ping('are you there')
    expect(String(await pinged)).toBe('are you there')
    expect(String((await pong).data)).toBe('are you there')
    ws.close()
    await closeEvent(ws)
  })

  it("the server's ping is a 'ping' event (answered by itself); pong(data) is an unsolicited pong", async () => {
    const p = await peer()
    const server = new Promise<import('ws').WebSocket>((r) => p.wss.once('connection', r))
    const ws = new WebSocket(p.url)
    await opened(ws)
    const sock = await server
    const ping = nextEvent(ws, 'ping')
    const answered = once(sock, 'pong')
    sock.ping(Buffer.from('hb'))
    expect(String((await ping).data)).toBe('hb')
    expect(String((await answered)[0])).toBe('hb')
    const unsolicited = once(sock, 'pong')
    ws.pong(new Uint8Array([1, 2, 3]))
    expect([...((await unsolicited)[0] as Buffer)]).toEqual([1, 2, 3])
    ws.close()
    await closeEvent(ws)
  })

  it('ping while connecting throws ERR_INVALID_STATE; a ping over 125 bytes is refused', async () => {
    const p = await peer()
    const ws = new WebSocket(p.url)
    expect(() => ws.ping()).toThrow(expect.objectContaining({ code: 'ERR_INVALID_STATE' }))
    await opened(ws)
    expect(() => ws.ping(new Uint8Array(126))).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
    ws.close()
    await closeEvent(ws)
  })

  it('terminate() drops the connection without a close frame: close 1006 on both sides', async () => {
    const p = await peer()
    const serverClosed = new Promise<number>((r) => p.wss.once('connection', (s) => s.on('close', (code) => r(code))))
    const ws = new WebSocket(p.url)
    await opened(ws)
    const closed = closeEvent(ws)
    ws.terminate()
    expect((await closed).code).toBe(1006)
    expect(await serverClosed).toBe(1006)
  })

  it('terminate() while connecting ends in close 1006 without an open event', async () => {
    const p = await peer()
    const ws = new WebSocket(p.url)
    let openedEvent = false
    ws.addEventListener('open', () => {
      openedEvent = true
    })
    const closed = closeEvent(ws)
    ws.terminate()
    expect((await closed).code).toBe(1006)
    expect(openedEvent).toBe(false)
  })
})

describe('WebSocket client: WHATWG exceptions', () => {
  it('a bad URL or scheme is a SyntaxError DOMException with code ERR_INVALID_URL', () => {
    for (const url of ['not a url', 'ftp://127.0.0.1/']) {
      let error: unknown
      try {
        new WebSocket(url)
      } catch (e) {
        error = e
      }
      expect(error).toBeInstanceOf(DOMException)
      expect((error as DOMException).name).toBe('SyntaxError')
      expect((error as { code: unknown }).code).toBe('ERR_INVALID_URL')
    }
  })

  it('a close code it may not send is an InvalidAccessError, a long reason a SyntaxError', async () => {
    const p = await peer()
    const ws = new WebSocket(p.url)
    await opened(ws)
    for (const [args, name] of [
      [[1001], 'InvalidAccessError'],
      [[2999], 'InvalidAccessError'],
      [[1000, 'x'.repeat(124)], 'SyntaxError'],
    ] as const) {
      let error: unknown
      try {
        ws.close(...(args as unknown as [number, string?]))
      } catch (e) {
        error = e
      }
      expect(error).toBeInstanceOf(DOMException)
      expect((error as DOMException).name).toBe(name)
    }
    expect(ws.readyState).toBe(WebSocket.OPEN)
    ws.close()
    await closeEvent(ws)
  })
})

describe('WebSocket client: followRedirects', () => {
  /** A server answering every upgrade request with a redirect from `routes` (path -> [status, Location]). */
  async function redirector(routes: Record<string, [number, string | ((base: string) => string)]>) {
    const seen: { url: string; headers: http.IncomingHttpHeaders }[] = []
    const server = http.createServer((_req, res) => res.writeHead(404).end())
    server.on('upgrade', (req: http.IncomingMessage, socket: net.Socket) => {
      seen.push({ url: String(req.url), headers: req.headers })
      const route = routes[String(req.url)]
      if (!route) return socket.end('HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n')
      const location = typeof route[1] === 'function' ? route[1](base) : route[1]
      socket.end(`HTTP/1.1 ${route[0]} Moved\r\nlocation: ${location}\r\ncontent-length: 0\r\n\r\n`)
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    servers.push(server)
    const base = `127.0.0.1:${(server.address() as net.AddressInfo).port}`
    return { base, seen }
  }
  const servers: http.Server[] = []
  afterEach(() => {
    for (const s of servers.splice(0)) s.close()
  })

  function failure(ws: WebSocket): Promise<{ error: { code?: string; message: string }; close: number }> {
    return new Promise((resolve) => {
      let error: { code?: string; message: string } = { message: '' }
      ws.addEventListener('error', (e) => {
        error = (e as ErrorEvent).error
      })
      ws.addEventListener('close', (e) => resolve({ error, close: (e as CloseEvent).code }))
    })
  }

  it('fails on a redirect by default', async () => {
    const { base } = await redirector({ '/old': [302, '/new'] })
    const ws = new WebSocket(`ws://${base}/old`)
    const { error, close } = await failure(ws)
    expect(close).toBe(1006)
    expect(error.code).toBe('ERR_WS_HANDSHAKE')
    expect(error.message).toContain('302')
  })

  it('follows redirects across schemes and origins, dropping credentials on the way out', async () => {
    const target = await peer()
    const heard: http.IncomingHttpHeaders[] = []
    target.wss.on('connection', (sock, req) => {
      heard.push(req.headers)
      sock.on('message', (d) => sock.send(String(d)))
    })
    const { base, seen } = await redirector({
      '/a': [301, (b) => `http://${b}/b?x=1`],
      '/b?x=1': [307, `${target.url}final`],
    })
    const ws = new WebSocket(`ws://${base}/a`, [], {
      followRedirects: true,
      headers: { authorization: 'Bearer secret', cookie: 'sid=1', 'x-trace': 't1' },
    })
    await opened(ws)
    expect(ws.url).toBe(`${target.url}final`)
    ws.send('hello')
    expect((await nextEvent(ws, 'message')).data).toBe('hello')
    // Same origin: the credentials go along; another origin: they are dropped.
    expect(seen.map((s) => [s.url, s.headers.authorization, s.headers.cookie])).toEqual([
      ['/a', 'Bearer secret', 'sid=1'],
      ['/b?x=1', 'Bearer secret', 'sid=1'],
    ])
    expect(heard[0]?.authorization).toBeUndefined()
    expect(heard[0]?.cookie).toBeUndefined()
    expect(heard[0]?.['x-trace']).toBe('t1')
    ws.close()
    await closeEvent(ws)
  })

  it('stops after maxRedirects (ERR_TOO_MANY_REDIRECTS) and refuses other schemes', async () => {
    const { base, seen } = await redirector({ '/loop': [302, '/loop'], '/ftp': [302, 'ftp://example.test/'] })
    const a = await failure(new WebSocket(`ws://${base}/loop`, [], { followRedirects: true, maxRedirects: 3 }))
    expect(a.error.code).toBe('ERR_TOO_MANY_REDIRECTS')
    expect(seen.length).toBe(4)
    const b = await failure(new WebSocket(`ws://${base}/loop`, [], { followRedirects: true }))
    expect(b.error.code).toBe('ERR_TOO_MANY_REDIRECTS')
    expect(seen.length).toBe(4 + 11)
    const c = await failure(new WebSocket(`ws://${base}/ftp`, [], { followRedirects: true }))
    expect(c.error.code).toBe('ERR_REDIRECT_REFUSED')
    expect(c.close).toBe(1006)
  })
})

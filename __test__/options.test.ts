// Strict options: an unknown key in any options object throws ERR_INVALID_ARG_VALUE naming it,
// with the right name when one is close (by spelling, or by what ws, undici or ioredis call it).
// An option that would do nothing is an error, never silently ignored.
import { once } from 'node:events'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client, CookieJar, EventSource, fetch, Hub, RedisAdapter, serve, serveWebSocket, WebSocket } from 'hypersock'
import { generateCertificate } from 'hypersock/testing'
import { describe, expect, it } from 'vitest'
import WS from 'ws'
import { caught, trackServers } from './helpers.js'

const track = trackServers()
const fetchHandler = () => 'ok'

async function refused(fn: () => unknown, key: string, hint?: string): Promise<void> {
  const e = await caught(fn)
  expect(e.code).toBe('ERR_INVALID_ARG_VALUE')
  expect(e.message).toContain(`unknown option '${key}'`)
  if (hint) expect(e.message).toContain(`did you mean '${hint}'?`)
  else expect(e.message).not.toContain('did you mean')
}

describe('unknown options throw, with a did-you-mean', () => {
  it('serve, its websocket handler, compression and stop', async () => {
    await refused(() => serve({ fetch: fetchHandler, prot: 8080 } as never), 'prot', 'port')
    await refused(
      () => serve({ fetch: fetchHandler, websocket: { perMessageDeflate: true } } as never),
      'perMessageDeflate',
      'compression',
    )
    await refused(
      () => serve({ fetch: fetchHandler, websocket: { compression: { treshold: 0 } } } as never),
      'treshold',
      'threshold',
    )
    await refused(() => serve({ fetch: fetchHandler, zzzzzzzz: 1 } as never), 'zzzzzzzz')
    const server = track(await serve({ fetch: fetchHandler }))
    await refused(() => server.stop({ gracefull: true } as never), 'gracefull', 'graceful')
    // Known keys given as undefined are fine.
    track(await serve({ fetch: fetchHandler, port: undefined, tls: undefined }))
  })

  it('serveWebSocket', async () => {
    await refused(() => serveWebSocket({ maxPayload: 1024 } as never), 'maxPayload', 'maxMessageSize')
    await refused(() => serveWebSocket({ mesage: () => {} } as never), 'mesage', 'message')
  })

  it('Client, retry, redirect, proxy and request init', async () => {
    await refused(() => new Client({ tiemout: 5000 } as never), 'tiemout', 'timeout')
    await refused(() => new Client({ retry: { attemps: 3 } } as never), 'attemps', 'attempts')
    await refused(() => new Client({ redirect: { maxx: 1 } } as never), 'maxx', 'max')
    await refused(() => new Client({ proxy: { uri: 'http://127.0.0.1:1' } } as never), 'uri', 'url')
    // What undici, node-fetch and ws call them.
    await refused(() => new Client({ allowH2: true } as never), 'allowH2', 'http2')
    await refused(() => new Client({ maxRedirections: 3 } as never), 'maxRedirections', 'redirect')
    await refused(() => new Client({ connections: 8 } as never), 'connections', 'maxConnectionsPerHost')
    await refused(() => new Client({ rejectUnauthorized: false } as never), 'rejectUnauthorized', 'tls')
    const server = track(await serve({ fetch: (req) => req.method }))
    const url = `http://127.0.0.1:${server.port}/`
    await refused(() => fetch(url, { methd: 'POST' } as never), 'methd', 'method')
    // WHATWG RequestInit keys that mean nothing outside a browser are accepted, as Node's fetch does.
    const res = await fetch(url, { method: 'PUT', mode: 'cors', credentials: 'include', cache: 'no-store' } as never)
    expect(await res.text()).toBe('PUT')
  })

  it('WebSocket, EventSource, Hub, RedisAdapter, CookieJar, generateCertificate', async () => {
    await refused(
      () => new WebSocket('ws://127.0.0.1:1/', [], { perMessageDeflate: false } as never),
      'perMessageDeflate',
      'compression',
    )
    await refused(() => new WebSocket('ws://127.0.0.1:1/', [], { compression: { levl: 1 } } as never), 'levl', 'level')
    await refused(() => new EventSource('http://127.0.0.1:1/', { retyr: 10 } as never), 'retyr', 'retry')
    await refused(() => new Hub({ slowConsumers: 'close' } as never), 'slowConsumers', 'slowConsumer')
    await refused(() => new RedisAdapter({ host: '127.0.0.1' } as never), 'host', 'url')
    await refused(() => new CookieJar({ clok: Date.now } as never), 'clok', 'clock')
    await refused(() => generateCertificate({ commonname: 'x' } as never), 'commonname', 'commonName')
  })
})

describe('RedisAdapter takes a URL string, as ioredis does', () => {
  it('the string is the URL: a bad scheme is refused as a URL, a good one constructs', async () => {
    const bad = await caught(() => new RedisAdapter('http://127.0.0.1:6379'))
    expect(bad.code).toBe('ERR_INVALID_URL')
    expect(new RedisAdapter('redis://127.0.0.1:6390')).toBeInstanceOf(RedisAdapter)
    const tls = await caught(() => new RedisAdapter({ url: 'redis://127.0.0.1:6390', tls: {} }))
    expect(tls.message).toContain('rediss://')
  })
})

describe('serveWebSocket takes tls, unix and reusePort like serve', () => {
  it('serves wss:// with tls', async () => {
    const cert = generateCertificate()
    const server = track(await serveWebSocket({ tls: cert, message: (ws, d) => ws.send(d) }))
    const ws = new WebSocket(`wss://localhost:${server.port}/`, [], { tls: { ca: cert.cert } })
    const reply = new Promise((r) => ws.addEventListener('message', (e) => r((e as MessageEvent).data), { once: true }))
    await new Promise((r) => ws.addEventListener('open', r, { once: true }))
    ws.send('over tls')
    expect(await reply).toBe('over tls')
    ws.close()
  })

  it('listens on a unix socket', async () => {
    const path = join(mkdtempSync(join(tmpdir(), 'hypersock-')), 'ws.sock')
    const server = track(await serveWebSocket({ unix: path, message: (ws, d) => ws.send(d) }))
    expect(server.port).toBe(0)
    const peer = new WS(`ws+unix://${path}:/`)
    await once(peer, 'open')
    peer.send('over unix')
    const [data] = await once(peer, 'message')
    expect(String(data)).toBe('over unix')
    peer.close()
  })

  it('two servers share a port with reusePort', async () => {
    const a = track(await serveWebSocket({ reusePort: true, message: () => {} }))
    const b = track(await serveWebSocket({ port: a.port, reusePort: true, message: () => {} }))
    expect(b.port).toBe(a.port)
    const refusedBind = await caught(() => serveWebSocket({ port: a.port, message: () => {} }))
    expect(refusedBind.code).toBeDefined()
  })
})

describe('an option of the wrong type throws ERR_INVALID_ARG_TYPE naming it', () => {
  async function wrongType(fn: () => unknown, message: string): Promise<void> {
    const e = await caught(fn)
    expect(e.code).toBe('ERR_INVALID_ARG_TYPE')
    expect(e.name).toBe('InvalidArgumentError')
    expect(e.message).toBe(message)
  }

  it('Client options, by their public names', async () => {
    await wrongType(
      () => new Client({ http2: true } as never),
      'http2 has the wrong type: expected a string, got boolean true',
    )
    await wrongType(
      () => new Client({ decompress: 'yes' } as never),
      'decompress has the wrong type: expected a boolean',
    )
    await wrongType(
      () => new Client({ socketPath: 3 } as never),
      'socketPath has the wrong type: expected a string, got number 3',
    )
    await wrongType(
      () => new Client({ retry: { statuses: 'x' } } as never),
      'retry.statuses has the wrong type: expected an array',
    )
  })

  it("an option of none of the accepted shapes is named, without the binding's words", async () => {
    const e = await caught(
      () => new WebSocket('ws://127.0.0.1:1/', [], { compression: { serverNoContextTakeover: 'x' } } as never),
    )
    expect(e.code).toBe('ERR_INVALID_ARG_TYPE')
    expect(e.message).toBe('compression.serverNoContextTakeover has the wrong type: expected a boolean, got string')
    const onServer = await caught(() =>
      serve({ fetch: fetchHandler, websocket: { compression: { clientNoContextTakeover: 1 } } } as never),
    )
    expect(onServer.code).toBe('ERR_INVALID_ARG_TYPE')
    expect(onServer.message).toBe(
      'compression.clientNoContextTakeover has the wrong type: expected a boolean, got number',
    )
  })

  it('serve options', async () => {
    await wrongType(
      () => serve({ fetch: fetchHandler, hostname: 5 } as never),
      'hostname has the wrong type: expected a string, got number 5',
    )
    await wrongType(
      () => serve({ fetch: fetchHandler, reusePort: 'yes' } as never),
      'reusePort has the wrong type: expected a boolean',
    )
  })

  it('retry counts attempts, and the error says so', async () => {
    const short = await caught(() => new Client({ retry: 0 }))
    expect(short.code).toBe('ERR_INVALID_ARG_VALUE')
    expect(short.message).toBe(
      'retry (the number of attempts in all: 1 sends once and never retries) must be an integer >= 1',
    )
    const long = await caught(() => new Client({ retry: { attempts: 0 } }))
    expect(long.message).toBe(
      'retry.attempts (attempts in all: 1 sends once and never retries) must be an integer >= 1',
    )
    expect(() => new Client({ retry: 1 })).not.toThrow()
  })

  it("serve's http2 takes true, false or 'only', nothing else", async () => {
    const e = await caught(() => serve({ fetch: fetchHandler, http2: 'yes' } as never))
    expect(e.code).toBe('ERR_INVALID_ARG_VALUE')
    expect(e.message).toBe("http2 must be true, false or 'only', not yes")
  })

  it('WebSocket subprotocols are strings and tokens, as in browsers', async () => {
    let offered: string[] = []
    const server = track(
      await serveWebSocket({
        port: 0,
        hostname: '127.0.0.1',
        upgrade(req) {
          offered = req.protocols
          return { protocol: req.protocols[0] }
        },
        message() {},
      }),
    )
    const e = await caught(() => new WebSocket(server.url, 'two words'))
    expect(e.name).toBe('SyntaxError')
    expect((e as { code?: string }).code).toBe('ERR_INVALID_ARG_VALUE')
    expect(e.message).toBe('subprotocol "two words" is not a valid token')
    // A number becomes its string, as WebIDL converts it.
    const ws = new WebSocket(server.url, [5, 'chat'] as never)
    await once(ws, 'open')
    expect(offered).toEqual(['5', 'chat'])
    expect(ws.protocol).toBe('5')
    // Any iterable is a list; a Symbol cannot become a string.
    const fromSet = new WebSocket(server.url, new Set(['chat', 'v2']) as never)
    await once(fromSet, 'open')
    expect(offered).toEqual(['chat', 'v2'])
    fromSet.close()
    expect(() => new WebSocket(server.url, Symbol('x') as never)).toThrow(TypeError)
    ws.close()
    await once(ws, 'close')
  })
})

// HTTP/2: ALPN over TLS, h2c by option, multiplexing on one connection, GOAWAY; against node:http2
// and nghttpd (Debian nghttp2-server, installed by .ci/run).
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, writeFileSync } from 'node:fs'
import http2 from 'node:http2'
import https from 'node:https'
import net, { type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client } from 'hypersock'
import { generateCertificate } from 'hypersock/testing'
import { afterEach, describe, expect, it } from 'vitest'
import { freePort } from './helpers.js'

const ca = generateCertificate({ isCa: true, commonName: 'hypersock h2 test CA' })
const leaf = generateCertificate({ ca })

const cleanups: (() => void)[] = []
afterEach(() => {
  for (const c of cleanups.splice(0)) c()
})

interface H2Peer {
  url: string
  /** TCP connections accepted so far. */
  connections: () => number
  sessions: http2.ServerHttp2Session[]
}

async function h2Server(secure: boolean, handler?: (stream: http2.ServerHttp2Stream, path: string) => void) {
  const sessions: http2.ServerHttp2Session[] = []
  let connections = 0
  const server = secure
    ? http2.createSecureServer({ cert: leaf.cert, key: leaf.key, allowHTTP1: true })
    : http2.createServer()
  server.on('connection', () => connections++)
  server.on('secureConnection', () => {})
  server.on('session', (s) => sessions.push(s))
  server.on('stream', (stream, headers) => {
    const path = String(headers[':path'])
    if (handler) return handler(stream, path)
    stream.respond({ ':status': 200, 'x-path': path })
    stream.end(`h2 ${path}`)
  })
  // HTTP/1.1 requests on the secure server (ALPN http/1.1).
  server.on('request', (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => {
    if (req.httpVersion === '2.0') return
    res.setHeader('x-path', req.url)
    res.end(`h1 ${req.url}`)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  cleanups.push(() => {
    for (const s of sessions) s.destroy()
    server.close()
  })
  const port = (server.address() as AddressInfo).port
  return { url: `${secure ? 'https' : 'http'}://127.0.0.1:${port}`, connections: () => connections, sessions } as H2Peer
}

describe('client HTTP/2', () => {
  it('negotiates h2 by ALPN over TLS in auto mode', async () => {
    const peer = await h2Server(true)
    const res = await new Client({ tls: { ca: ca.cert } }).fetch(`${peer.url}/alpn`)
    expect(res.httpVersion).toBe('HTTP/2')
    expect(res.tls?.alpnProtocol).toBe('h2')
    expect(await res.text()).toBe('h2 /alpn')
  })

  it('stays on HTTP/1.1 with http2: never', async () => {
    const peer = await h2Server(true)
    const res = await new Client({ tls: { ca: ca.cert }, http2: 'never' }).fetch(`${peer.url}/one`)
    expect(res.httpVersion).toBe('HTTP/1.1')
    expect(res.tls?.alpnProtocol).toBe('http/1.1')
    expect(await res.text()).toBe('h1 /one')
  })

  it('speaks h2c (prior knowledge) over plain TCP with http2: always', async () => {
    const peer = await h2Server(false)
    const res = await new Client({ http2: 'always' }).fetch(`${peer.url}/clear`)
    expect(res.httpVersion).toBe('HTTP/2')
    expect(await res.text()).toBe('h2 /clear')
  })

  it('multiplexes many concurrent requests over one TCP connection', async () => {
    const peer = await h2Server(true)
    for (const http2Mode of ['always', 'auto'] as const) {
      const before = peer.connections()
      const client = new Client({ tls: { ca: ca.cert }, http2: http2Mode })
      // In auto mode the protocol is known only after the first handshake.
      if (http2Mode === 'auto') await (await client.fetch(`${peer.url}/warm`)).text()
      const bodies = await Promise.all(
        Array.from({ length: 50 }, (_, i) => client.fetch(`${peer.url}/m${i}`).then((r) => r.text())),
      )
      expect(bodies[49]).toBe('h2 /m49')
      expect(peer.connections() - before, http2Mode).toBe(1)
      expect(client.stats.opened, http2Mode).toBe(1)
    }
  })

  it('coalesces concurrent first requests to a new origin onto one HTTP/2 connection (auto mode)', async () => {
    const peer = await h2Server(true)
    const client = new Client({ tls: { ca: ca.cert } })
    // No request has gone before: the protocol is known only once the first handshake is done.
    const responses = await Promise.all(Array.from({ length: 10 }, (_, i) => client.fetch(`${peer.url}/first${i}`)))
    const bodies = await Promise.all(responses.map((r) => r.text()))
    expect(bodies).toEqual(Array.from({ length: 10 }, (_, i) => `h2 /first${i}`))
    expect(new Set(responses.map((r) => r.httpVersion))).toEqual(new Set(['HTTP/2']))
    expect(new Set(responses.map((r) => r.connectionId)).size).toBe(1)
    // Without coalescing the other nine handshakes finish in the background a little later and
    // are dropped; give them time to show. (The pause only makes the test sharper: with
    // coalescing no second connection is ever attempted.)
    await new Promise((resolve) => setTimeout(resolve, 300))
    expect(peer.connections()).toBe(1)
    expect(client.stats.opened).toBe(1)
  })

  it('opens connections side by side when a TLS origin answers without h2', async () => {
    // node:https offers no ALPN protocol: the client falls back to HTTP/1.1.
    const server = https.createServer({ cert: leaf.cert, key: leaf.key }, (req, res) => {
      // Held until all eight have arrived, so each needs its own connection.
      waiting.push(() => res.end(`h1 ${req.url}`))
      if (waiting.length === 8) for (const end of waiting.splice(0)) end()
    })
    const waiting: (() => void)[] = []
    let connections = 0
    server.on('secureConnection', () => connections++)
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    cleanups.push(() => server.close())
    const url = `https://127.0.0.1:${(server.address() as AddressInfo).port}`
    const client = new Client({ tls: { ca: ca.cert } })
    const responses = await Promise.all(Array.from({ length: 8 }, (_, i) => client.fetch(`${url}/h${i}`)))
    expect(await Promise.all(responses.map((r) => r.text()))).toEqual(Array.from({ length: 8 }, (_, i) => `h1 /h${i}`))
    expect(responses[0]?.httpVersion).toBe('HTTP/1.1')
    expect(new Set(responses.map((r) => r.connectionId)).size).toBe(8)
    expect(connections).toBe(8)
  })

  it('lets concurrent first requests fail on their own when the origin cannot be reached', async () => {
    const port = await freePort()
    const client = new Client({ tls: { ca: ca.cert } })
    const results = await Promise.allSettled(
      Array.from({ length: 5 }, () => client.fetch(`https://127.0.0.1:${port}/`, { retry: 1 })),
    )
    for (const r of results) {
      expect(r.status).toBe('rejected')
      expect((r as PromiseRejectedResult).reason.code).toBe('ECONNREFUSED')
    }
  })

  it('moves to a new connection after GOAWAY', async () => {
    const peer = await h2Server(false)
    const client = new Client({ http2: 'always' })
    const first = await client.fetch(`${peer.url}/a`)
    expect(await first.text()).toBe('h2 /a')
    const session = peer.sessions[0] as http2.ServerHttp2Session
    // close() sends GOAWAY and ends the session once its streams are done (none are open).
    const closed = once(session, 'close')
    session.close()
    await closed
    const second = await client.fetch(`${peer.url}/b`)
    expect(await second.text()).toBe('h2 /b')
    expect(second.connectionId).not.toBe(first.connectionId)
    expect(peer.connections()).toBe(2)
  })

  it('fetches from nghttpd over TLS (ALPN h2) and h2c', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hypersock-nghttpd-'))
    writeFileSync(join(dir, 'hello.txt'), 'served by nghttpd\n')
    writeFileSync(join(dir, 'cert.pem'), leaf.cert)
    writeFileSync(join(dir, 'key.pem'), leaf.key)
    const start = async (options: string[], keyAndCert: string[]): Promise<number> => {
      const port = await freePort()
      const child: ChildProcess = spawn('nghttpd', [...options, '-d', dir, String(port), ...keyAndCert], {
        stdio: 'ignore',
      })
      cleanups.push(() => child.kill())
      // Wait until it accepts connections.
      for (let i = 0; i < 100; i++) {
        const ok = await new Promise<boolean>((resolve) => {
          const s = net.connect(port, '127.0.0.1')
          s.on('connect', () => {
            s.destroy()
            resolve(true)
          })
          s.on('error', () => resolve(false))
        })
        if (ok) return port
        await new Promise((r) => setTimeout(r, 50))
      }
      throw new Error('nghttpd did not start')
    }
    const tlsPort = await start([], [join(dir, 'key.pem'), join(dir, 'cert.pem')])
    const client = new Client({ tls: { ca: ca.cert } })
    const res = await client.fetch(`https://127.0.0.1:${tlsPort}/hello.txt`)
    expect(res.httpVersion).toBe('HTTP/2')
    expect(res.tls?.alpnProtocol).toBe('h2')
    expect(await res.text()).toBe('served by nghttpd\n')
    const all = await Promise.all(
      Array.from({ length: 20 }, () => client.fetch(`https://127.0.0.1:${tlsPort}/hello.txt`).then((r) => r.text())),
    )
    expect(all.every((b) => b === 'served by nghttpd\n')).toBe(true)
    expect(client.stats.opened).toBe(1)
    const clearPort = await start(['--no-tls'], [])
    const h2c = new Client({ http2: 'always' })
    const clear = await h2c.fetch(`http://127.0.0.1:${clearPort}/hello.txt`)
    expect(clear.httpVersion).toBe('HTTP/2')
    expect(await clear.text()).toBe('served by nghttpd\n')
  })
})

import { once } from 'node:events'
import http2 from 'node:http2'
import https from 'node:https'
import net from 'node:net'
import type tls from 'node:tls'
import { type Server, serve } from 'hypersock'

/** `req.tls` as the handlers below send it back, through JSON. */
type ServerTlsInfo = {
  protocol: string
  cipher: string
  alpnProtocol: string | null
  serverName?: string | null
  chain: Array<{ subjectCN: string | null; fingerprint256: string; validTo: string }>
}

import { type CertificateAndKey, generateCertificate } from 'hypersock/testing'
import { beforeAll, describe, expect, it } from 'vitest'
import { trackServers } from './helpers.js'

const track = trackServers()

let ca: CertificateAndKey
let leaf: CertificateAndKey
beforeAll(() => {
  ca = generateCertificate({ isCa: true, commonName: 'hypersock test CA' })
  leaf = generateCertificate({ ca, commonName: 'localhost', subjectAltNames: ['localhost', '127.0.0.1'] })
})

async function start(options: Partial<Parameters<typeof serve>[0]> = {}): Promise<Server> {
  return track(
    await serve({
      tls: { cert: leaf.cert, key: leaf.key },
      fetch: (req) => ({ headers: { 'content-type': 'application/json' }, body: JSON.stringify(req.tls) }),
      ...options,
    }),
  )
}

/** GET over node:https; resolves with status, body, and the server certificate seen. */
function get(
  url: URL,
  options: https.RequestOptions & tls.ConnectionOptions = {},
): Promise<{ status: number; body: string; peer: tls.PeerCertificate }> {
  return new Promise((resolve, reject) => {
    const req = https.get(url, { ca: ca.cert, agent: false, ...options }, (res) => {
      const peer = (res.socket as tls.TLSSocket).getPeerCertificate()
      let body = ''
      res.setEncoding('utf8')
      res.on('data', (c: string) => {
        body += c
      })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, peer }))
    })
    req.on('error', reject)
  })
}

describe('serve: TLS', () => {
  it('serves HTTPS with a CA-signed certificate and exposes what TLS negotiated', async () => {
    const server = await start()
    expect(server.url.protocol).toBe('https:')
    const res = await get(server.url, { ALPNProtocols: ['http/1.1'] })
    expect(res.status).toBe(200)
    const info = JSON.parse(res.body) as ServerTlsInfo
    expect(info.protocol).toBe('TLSv1.3')
    expect(info.alpnProtocol).toBe('http/1.1')
    expect(info.cipher).toMatch(/^TLS13_/)
    expect(info.chain).toEqual([])
    expect(res.peer.subject.CN).toBe('localhost')
  })

  it('negotiates TLS 1.2 and TLS 1.3 each, and refuses 1.2 with minVersion TLSv1.3', async () => {
    const server = await start()
    const v12 = JSON.parse((await get(server.url, { maxVersion: 'TLSv1.2' })).body) as ServerTlsInfo
    expect(v12.protocol).toBe('TLSv1.2')
    const v13 = JSON.parse((await get(server.url, { minVersion: 'TLSv1.3' })).body) as ServerTlsInfo
    expect(v13.protocol).toBe('TLSv1.3')
    const strict = await start({ tls: { cert: leaf.cert, key: leaf.key, minVersion: 'TLSv1.3' } })
    const err = await get(strict.url, { maxVersion: 'TLSv1.2' }).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(Error)
    expect(strict.stats().tlsFailures).toBe(1)
  })

  it('serves HTTP/2 chosen by ALPN', async () => {
    const server = await start({ fetch: (req) => `${req.httpVersion} ${req.tls?.alpnProtocol}` })
    const session = http2.connect(server.url.href, { ca: ca.cert })
    const stream = session.request({ ':path': '/' })
    let body = ''
    stream.setEncoding('utf8')
    stream.on('data', (c: string) => {
      body += c
    })
    await once(stream, 'end')
    session.close()
    expect(body).toBe('2 h2')
  })

  it('picks the certificate by SNI name, with the first as the default', async () => {
    const a = generateCertificate({ ca, commonName: 'a.test', subjectAltNames: ['a.test'] })
    const b = generateCertificate({ ca, commonName: 'b.test', subjectAltNames: ['*.b.test', 'b.test'] })
    const server = await start({
      tls: {
        cert: leaf.cert,
        key: leaf.key,
        sni: [
          { serverName: 'a.test', ...a },
          { serverName: ['b.test', '*.b.test'], ...b },
        ],
      },
      fetch: (req) => String(req.tls?.serverName),
    })
    const seen = async (servername: string) => {
      const res = await get(server.url, { servername, checkServerIdentity: () => undefined })
      return [res.peer.subject.CN, res.body]
    }
    expect(await seen('a.test')).toEqual(['a.test', 'a.test'])
    expect(await seen('www.b.test')).toEqual(['b.test', 'www.b.test'])
    expect(await seen('other.test')).toEqual(['localhost', 'other.test'])
  })

  it('reloads certificates without a restart; open connections keep theirs', async () => {
    const server = await start({ fetch: () => 'ok' })
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1, ca: ca.cert })
    const before = await get(server.url, { agent })
    expect(before.peer.subject.CN).toBe('localhost')
    const renewed = generateCertificate({ ca, commonName: 'renewed', subjectAltNames: ['127.0.0.1'] })
    server.reloadTls({ cert: renewed.cert, key: renewed.key })
    const kept = await get(server.url, { agent })
    expect(kept.peer.subject.CN).toBe('localhost')
    const fresh = await get(server.url)
    expect(fresh.peer.subject.CN).toBe('renewed')
    agent.destroy()
    expect(() => server.reloadTls({ cert: 'not a pem', key: 'nope' })).toThrowError(
      expect.objectContaining({ code: expect.stringMatching(/^ERR_/) }),
    )
  })

  it('authenticates clients by certificate (mutual TLS) and shows the certificate to the handler', async () => {
    const client = generateCertificate({ ca, commonName: 'client-7', subjectAltNames: ['client-7.test'] })
    const server = await start({ tls: { cert: leaf.cert, key: leaf.key, clientCa: ca.cert, requireClientCert: true } })
    const info = JSON.parse((await get(server.url, { cert: client.cert, key: client.key })).body) as ServerTlsInfo
    expect(info.chain[0]?.subjectCN).toBe('client-7')
    expect(new Date(info.chain[0]?.validTo ?? 0).getTime()).toBeGreaterThan(Date.now())
    expect(info.chain[0]?.fingerprint256).toMatch(/^([0-9A-F]{2}:){31}[0-9A-F]{2}$/)
    const refused = await get(server.url).catch((e: unknown) => e)
    expect(refused).toBeInstanceOf(Error)
    const stranger = generateCertificate({ commonName: 'stranger' })
    const wrongCa = await get(server.url, { cert: stranger.cert, key: stranger.key }).catch((e: unknown) => e)
    expect(wrongCa).toBeInstanceOf(Error)
    // The server counts a refused handshake after it has sent its alert, which the client may see first.
    for (let i = 0; i < 500 && server.stats().tlsFailures < 2; i++) await new Promise((r) => setTimeout(r, 10))
    expect(server.stats().tlsFailures).toBe(2)
    const optional = await start({ tls: { cert: leaf.cert, key: leaf.key, clientCa: ca.cert } })
    expect((JSON.parse((await get(optional.url)).body) as ServerTlsInfo).chain).toEqual([])
  })

  it('drops plain HTTP and garbage on the TLS port and keeps serving', async () => {
    const server = await start({ fetch: () => 'fine' })
    const socket = net.connect(server.port, '127.0.0.1')
    await once(socket, 'connect')
    socket.write('GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    socket.on('data', () => {})
    socket.on('error', () => {})
    await once(socket, 'close')
    expect((await get(server.url)).body).toBe('fine')
  })
})

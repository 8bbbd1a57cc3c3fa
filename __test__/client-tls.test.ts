// The client over real TLS: node:https peers with certificates made at test time by
// hypersock/testing (rcgen).
import { once } from 'node:events'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import type tls from 'node:tls'
import { Client, type HypersockError, InvalidArgumentError, serve, TlsError } from 'hypersock'
import { type CertificateAndKey, generateCertificate } from 'hypersock/testing'
import { afterEach, describe, expect, it } from 'vitest'
import { caught, trackServers } from './helpers.js'

const ca = generateCertificate({ isCa: true, commonName: 'hypersock client test CA' })
const leaf = generateCertificate({ ca })

const servers: https.Server[] = []
afterEach(() => {
  for (const s of servers.splice(0)) {
    s.closeAllConnections()
    s.close()
  }
})

async function httpsServer(
  options: https.ServerOptions,
  onRequest?: (req: import('node:http').IncomingMessage) => void,
) {
  const server = https.createServer(options, (req, res) => {
    onRequest?.(req)
    const socket = req.socket as tls.TLSSocket
    res.setHeader('x-servername', String(socket.servername ?? ''))
    res.setHeader('x-protocol', String(socket.getProtocol()))
    const peer = socket.getPeerCertificate()
    res.setHeader('x-client-cn', peer?.subject?.CN ?? '')
    res.end('secure')
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  servers.push(server)
  return `https://127.0.0.1:${(server.address() as AddressInfo).port}`
}

function serverOpts(cert: CertificateAndKey, extra: https.ServerOptions = {}): https.ServerOptions {
  return { cert: cert.cert, key: cert.key, ...extra }
}

async function code(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => 'no error',
    (e: unknown) => e,
  )
  return (err as HypersockError).code ?? String(err)
}

const track = trackServers()

describe('client TLS', () => {
  it('trusts a custom CA and reports the peer certificate and the handshake', async () => {
    const url = await httpsServer(serverOpts(leaf))
    const client = new Client({ tls: { ca: ca.cert } })
    const res = await client.fetch(url)
    expect(await res.text()).toBe('secure')
    expect(res.tls?.protocol).toBe('TLSv1.3')
    expect(res.tls?.cipher).toMatch(/^TLS13_/)
    const cert = res.peerCertificate
    expect(cert?.subject).toBe('CN=localhost')
    expect(cert?.subjectCN).toBe('localhost')
    expect(cert?.issuer).toBe('CN=hypersock client test CA')
    expect(cert?.subjectAltNames).toEqual(expect.arrayContaining(['DNS:localhost', 'IP:127.0.0.1']))
    expect(cert?.validTo.getTime()).toBeGreaterThan(Date.now())
    expect(cert?.validFrom.getTime()).toBeLessThan(Date.now())
    // The fingerprint is the SHA-256 of the DER, as Node computes it.
    const x509 = new (await import('node:crypto')).X509Certificate(leaf.cert)
    expect(cert?.fingerprint256).toBe(x509.fingerprint256)
    expect(cert?.raw.equals(x509.raw)).toBe(true)
    expect(res.tls?.chain.length).toBe(1)
  })

  it('rejects expired, not-yet-valid, self-signed, wrong-host and unknown-CA certificates with distinct codes', async () => {
    const day = 86_400_000
    const expired = generateCertificate({
      ca,
      notBefore: new Date(Date.now() - 10 * day),
      notAfter: new Date(Date.now() - day),
    })
    const future = generateCertificate({
      ca,
      notBefore: new Date(Date.now() + day),
      notAfter: new Date(Date.now() + 10 * day),
    })
    const selfSigned = generateCertificate()
    const otherHost = generateCertificate({ ca, commonName: 'other.test', subjectAltNames: ['other.test'] })
    const otherCa = generateCertificate({ isCa: true, commonName: 'somebody else' })
    const unknown = generateCertificate({ ca: otherCa })
    const client = new Client({ tls: { ca: ca.cert } })
    const cases: [CertificateAndKey, string][] = [
      [expired, 'ERR_TLS_CERT_EXPIRED'],
      [future, 'ERR_TLS_CERT_NOT_YET_VALID'],
      [selfSigned, 'ERR_TLS_CERT_SELF_SIGNED'],
      [otherHost, 'ERR_TLS_CERT_HOSTNAME'],
      [unknown, 'ERR_TLS_CERT_UNKNOWN_CA'],
    ]
    for (const [cert, expected] of cases) {
      const url = await httpsServer(serverOpts(cert))
      const err = await client.fetch(url).catch((e: unknown) => e)
      expect(err, expected).toBeInstanceOf(TlsError)
      expect((err as HypersockError).code, expected).toBe(expected)
    }
  })

  it('verifies against the default roots unless told otherwise', async () => {
    const url = await httpsServer(serverOpts(leaf))
    expect(await code(new Client().fetch(url))).toBe('ERR_TLS_CERT_UNKNOWN_CA')
  })

  it('skips verification only with an explicit rejectUnauthorized: false', async () => {
    const url = await httpsServer(serverOpts(generateCertificate({ subjectAltNames: ['nowhere.test'] })))
    expect(await code(new Client({ tls: {} }).fetch(url))).toBe('ERR_TLS_CERT_SELF_SIGNED')
    const res = await new Client({ tls: { rejectUnauthorized: false } }).fetch(url)
    expect(await res.text()).toBe('secure')
    expect(res.peerCertificate?.subjectAltNames).toEqual(['DNS:nowhere.test'])
  })

  it('speaks TLS 1.2 and TLS 1.3 and honours minVersion', async () => {
    const only12 = await httpsServer(serverOpts(leaf, { maxVersion: 'TLSv1.2' }))
    const res12 = await new Client({ tls: { ca: ca.cert } }).fetch(only12)
    expect(res12.tls?.protocol).toBe('TLSv1.2')
    expect(res12.headers.get('x-protocol')).toBe('TLSv1.2')
    expect(await code(new Client({ tls: { ca: ca.cert, minVersion: 'TLSv1.3' } }).fetch(only12))).toBe(
      'ERR_TLS_HANDSHAKE',
    )
    const any = await httpsServer(serverOpts(leaf))
    const res13 = await new Client({ tls: { ca: ca.cert, maxVersion: 'TLSv1.2' } }).fetch(any)
    expect(res13.tls?.protocol).toBe('TLSv1.2')
  })

  it('sends SNI: the URL host, or tls.servername', async () => {
    const url = await httpsServer(serverOpts(leaf))
    const port = new URL(url).port
    const res = await new Client({ tls: { ca: ca.cert } }).fetch(`https://localhost:${port}/`)
    expect(res.headers.get('x-servername')).toBe('localhost')
    const named = generateCertificate({ ca, subjectAltNames: ['api.internal.test'] })
    const url2 = await httpsServer(serverOpts(named))
    const res2 = await new Client({ tls: { ca: ca.cert, servername: 'api.internal.test' } }).fetch(url2)
    expect(res2.headers.get('x-servername')).toBe('api.internal.test')
  })

  it('presents a client certificate for mutual TLS', async () => {
    const clientCert = generateCertificate({ ca, commonName: 'client-7', subjectAltNames: ['client7.test'] })
    const url = await httpsServer(serverOpts(leaf, { ca: ca.cert, requestCert: true, rejectUnauthorized: true }))
    const res = await new Client({ tls: { ca: ca.cert, cert: clientCert.cert, key: clientCert.key } }).fetch(url)
    expect(res.headers.get('x-client-cn')).toBe('client-7')
    const err = await code(new Client({ tls: { ca: ca.cert } }).fetch(url))
    expect(err).toBe('ERR_TLS_HANDSHAKE')
  })

  it('reports a missing client certificate as ERR_TLS_HANDSHAKE over HTTP/2 and HTTP/1.1', async () => {
    // Over TLS 1.3 the refusal is an alert on the first read after the handshake; over HTTP/2 it
    // reaches the client through the h2 layer, which keeps only the I/O error's text.
    const server = track(
      await serve({
        port: 0,
        hostname: '127.0.0.1',
        tls: { cert: leaf.cert, key: leaf.key, clientCa: ca.cert, requireClientCert: true },
        fetch: () => 'hello',
      }),
    )
    for (const http2 of ['auto', 'never'] as const) {
      const err = await caught(async () => (await new Client({ tls: { ca: ca.cert }, http2 }).fetch(server.url)).text())
      expect(err).toBeInstanceOf(TlsError)
      expect(err.code).toBe('ERR_TLS_HANDSHAKE')
      expect(err.message).toContain('CertificateRequired')
      expect(err.message).toContain('give tls.cert and tls.key')
    }
    const clientCert = generateCertificate({ ca, commonName: 'client-8' })
    const ok = new Client({ tls: { ca: ca.cert, cert: clientCert.cert, key: clientCert.key } })
    const res = await ok.fetch(server.url)
    expect(res.httpVersion).toBe('HTTP/2')
    expect(await res.text()).toBe('hello')
  })

  it('rejects bad TLS options when the client is made', async () => {
    expect(() => new Client({ tls: { ca: 'not a pem' } })).toThrow(TlsError)
    const err = await caught(() => new Client({ tls: { cert: leaf.cert } }))
    expect(err).toBeInstanceOf(InvalidArgumentError)
    expect(err.code).toBe('ERR_INVALID_ARG_VALUE')
    expect(err.message).toMatch(/together/)
  })
})

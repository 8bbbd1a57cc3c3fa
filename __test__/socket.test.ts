// Raw connections (`connect`): a plain TCP echo, TLS from the start, a STARTTLS exchange with a
// test server that upgrades mid-connection, bad certificates with the client's error codes,
// half-close, backpressure on reading, the web stream pair, timeouts and aborts.
import { spawn } from 'node:child_process'
import { once } from 'node:events'
import net, { type AddressInfo } from 'node:net'
import { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import tls from 'node:tls'
import { connect, type HypersockError } from 'hypersock'
import { type CertificateAndKey, generateCertificate } from 'hypersock/testing'
import { afterEach, describe, expect, it } from 'vitest'
import { caught } from './helpers.js'

const ca = generateCertificate({ isCa: true, commonName: 'hypersock socket test CA' })
const leaf = generateCertificate({ ca })
const expired = generateCertificate({
  ca,
  notBefore: new Date(Date.now() - 7_200_000),
  notAfter: new Date(Date.now() - 3_600_000),
})

const servers: net.Server[] = []
afterEach(() => {
  for (const s of servers.splice(0)) s.close()
})

async function listen(server: net.Server): Promise<number> {
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  servers.push(server)
  return (server.address() as AddressInfo).port
}

/** A TCP echo server that also reports when the client ended its side. */
async function echoServer(): Promise<{ port: number; ended: Promise<void> }> {
  let ended!: () => void
  const done = new Promise<void>((r) => {
    ended = r
  })
  const server = net.createServer({ allowHalfOpen: true }, (c) => {
    c.on('data', (d) => c.write(d))
    c.on('end', () => {
      ended()
      c.end('bye')
    })
  })
  return { port: await listen(server), ended: done }
}

/**
 * A line server speaking a STARTTLS-style protocol: greets, answers `STARTTLS` with `GO`, then
 * upgrades the same socket to TLS with `cert` and echoes lines prefixed with `secure:`.
 */
async function starttlsServer(cert: CertificateAndKey): Promise<number> {
  const server = net.createServer((c) => {
    c.write('220 hello\r\n')
    let buf = ''
    const onData = (d: Buffer) => {
      buf += d.toString('latin1')
      if (!buf.includes('\r\n')) return
      const line = buf.slice(0, buf.indexOf('\r\n'))
      buf = ''
      if (line !== 'STARTTLS') {
        c.end('500 say STARTTLS\r\n')
        return
      }
      c.off('data', onData)
      c.write('220 GO\r\n', () => {
        const secure = new tls.TLSSocket(c, { isServer: true, cert: cert.cert, key: cert.key })
        secure.on('error', () => {})
        secure.on('data', (x) => secure.write(`secure:${x}`))
      })
    }
    c.on('data', onData)
    c.on('error', () => {})
  })
  return listen(server)
}

/** Reads until `text` has arrived, then pauses the socket (the rest stays for the next reader). */
function readUntil(socket: NodeJS.ReadableStream, text: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let got = ''
    const onData = (chunk: Buffer) => {
      got += chunk.toString()
      if (!got.includes(text)) return
      socket.off('data', onData)
      socket.off('error', reject)
      socket.pause()
      resolve(got)
    }
    socket.on('data', onData)
    socket.once('error', reject)
    socket.resume()
  })
}

describe('connect', () => {
  it('talks to a plain TCP echo server, half-closes, and reports addresses', async () => {
    const { port, ended } = await echoServer()
    const socket = await connect({ hostname: '127.0.0.1', port, allowHalfOpen: true })
    expect(socket.remotePort).toBe(port)
    expect(socket.remoteAddress).toBe('127.0.0.1')
    expect(socket.localPort).toBeGreaterThan(0)
    expect(socket.tls).toBeUndefined()
    const chunks: Buffer[] = []
    const readEnd = once(socket, 'end')
    const closed = once(socket, 'close')
    socket.on('data', (d: Buffer) => chunks.push(d))
    socket.write('ping ')
    socket.write(Buffer.from('pong'))
    socket.end()
    await ended
    // Reading goes on after this side ended: the echo and the server's last words arrive.
    await readEnd
    expect(Buffer.concat(chunks).toString()).toBe('ping pongbye')
    await closed
  })

  it('carries a large transfer both ways through a slow reader without losing a byte', async () => {
    const { port } = await echoServer()
    const socket = await connect({ hostname: '127.0.0.1', port })
    const data = Buffer.alloc(8 << 20)
    for (let i = 0; i < data.length; i++) data[i] = (i * 31) % 256
    let received = 0
    let mismatch = -1
    const sink = new Writable({
      highWaterMark: 1024,
      write(chunk: Buffer, _e, done) {
        for (let i = 0; i < chunk.length; i++) {
          if (mismatch < 0 && chunk[i] !== data[received + i]) mismatch = received + i
        }
        received += chunk.length
        // A slow consumer: the socket's reading must pause rather than buffer without bound.
        setImmediate(done)
      },
    })
    const reading = pipeline(socket, sink).catch(() => {})
    for (let at = 0; at < data.length; at += 1 << 20) {
      if (!socket.write(data.subarray(at, at + (1 << 20)))) await once(socket, 'drain')
    }
    while (received < data.length) await new Promise((r) => setTimeout(r, 5))
    expect(mismatch).toBe(-1)
    expect(received).toBe(data.length)
    // The readable side never held more than its high-water mark plus one read.
    expect(socket.readableLength).toBeLessThanOrEqual(socket.readableHighWaterMark + (64 << 10))
    socket.destroy()
    await reading
  })

  it('opens TLS from the start with the client TLS options and reports the handshake', async () => {
    const server = tls.createServer({ cert: leaf.cert, key: leaf.key, ALPNProtocols: ['x-test'] }, (c) => {
      c.on('data', (d) => c.write(`tls:${d}`))
    })
    const port = await listen(server)
    const socket = await connect({
      hostname: 'localhost',
      port,
      tls: { ca: ca.cert },
      alpnProtocols: ['x-test'],
    })
    expect(socket.tls?.protocol).toBe('TLSv1.3')
    expect(socket.tls?.alpnProtocol).toBe('x-test')
    expect(socket.tls?.chain[0]?.subjectCN).toBe('localhost')
    socket.write('hi')
    expect(await readUntil(socket, 'tls:hi')).toBe('tls:hi')
    socket.destroy()
  })

  it('refuses bad certificates with the client error codes', async () => {
    const expiredPort = await listen(tls.createServer({ cert: expired.cert, key: expired.key }, () => {}))
    const goodPort = await listen(tls.createServer({ cert: leaf.cert, key: leaf.key }, () => {}))
    const code = async (p: Promise<unknown>) =>
      (
        (await p.then(
          () => null,
          (e) => e,
        )) as HypersockError
      )?.code
    // Unknown CA (the default roots do not know it).
    expect(await code(connect({ hostname: 'localhost', port: goodPort, tls: true }))).toBe('ERR_TLS_CERT_UNKNOWN_CA')
    expect(await code(connect({ hostname: 'localhost', port: expiredPort, tls: { ca: ca.cert } }))).toBe(
      'ERR_TLS_CERT_EXPIRED',
    )
    // The certificate names localhost, not this name.
    expect(
      await code(connect({ hostname: '127.0.0.1', port: goodPort, tls: { ca: ca.cert, servername: 'other.test' } })),
    ).toBe('ERR_TLS_CERT_HOSTNAME')
    // rejectUnauthorized: false lets it through.
    const s = await connect({ hostname: 'localhost', port: goodPort, tls: { rejectUnauthorized: false } })
    expect(s.tls?.protocol).toMatch(/^TLSv1\.[23]$/)
    s.destroy()
  })

  it('upgrades a plain connection in place with startTls (a STARTTLS exchange)', async () => {
    const port = await starttlsServer(leaf)
    const socket = await connect({ hostname: 'localhost', port })
    expect(await readUntil(socket, '\r\n')).toBe('220 hello\r\n')
    socket.write('STARTTLS\r\n')
    expect(await readUntil(socket, '\r\n')).toBe('220 GO\r\n')
    const details = await socket.startTls({ ca: ca.cert })
    expect(details.protocol).toBe('TLSv1.3')
    expect(socket.tls?.chain[0]?.subjectCN).toBe('localhost')
    socket.write('mail')
    expect(await readUntil(socket, 'secure:mail')).toBe('secure:mail')
    // A second upgrade is refused.
    expect((await caught(() => socket.startTls())).code).toBe('ERR_INVALID_STATE')
    socket.destroy()
  })

  it('a STARTTLS upgrade to an untrusted certificate rejects with the TLS code and closes', async () => {
    const port = await starttlsServer(leaf)
    const socket = await connect({ hostname: 'localhost', port })
    await readUntil(socket, '\r\n')
    socket.write('STARTTLS\r\n')
    await readUntil(socket, '\r\n')
    const closed = once(socket, 'close')
    expect((await caught(() => socket.startTls())).code).toBe('ERR_TLS_CERT_UNKNOWN_CA')
    await closed
  })

  it('startTls: a time limit for a silent peer, one upgrade at a time', async () => {
    // A peer that takes the connection and never answers the ClientHello.
    const silent = await listen(net.createServer(() => {}))
    const socket = await connect({ hostname: 'localhost', port: silent })
    const closed = once(socket, 'close')
    const first = socket.startTls({ timeout: 200 })
    expect((await caught(() => socket.startTls())).code).toBe('ERR_INVALID_STATE')
    expect((await caught(() => first)).code).toBe('ETIMEDOUT')
    await closed
    expect(
      (await caught(() => connect({ hostname: '127.0.0.1', port: silent, alpnProtocols: ['x'] }))).message,
    ).toMatch(/alpnProtocols needs tls/)
  })

  it('keeps the process alive while the connection is open, as a net.Socket does', async () => {
    // The server speaks only once the child's connection has been open a while; a child that
    // did not hold its event loop open would have exited by then.
    let release!: () => void
    const later = new Promise<void>((r) => {
      release = r
    })
    const server = net.createServer((c) => {
      c.on('error', () => {})
      later.then(() => c.end('late words'))
    })
    const port = await listen(server)
    const script = `import { connect } from 'hypersock'
const s = await connect({ hostname: '127.0.0.1', port: ${port} })
process.stdout.write('connected\\n')
s.on('data', (d) => process.stdout.write(String(d)))`
    const child = spawn(process.execPath, ['--input-type=module', '-e', script], { cwd: process.cwd() })
    let out = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d
      if (out.includes('connected')) setTimeout(release, 300)
    })
    const [code] = (await once(child, 'exit')) as [number]
    expect(code).toBe(0)
    expect(out).toBe('connected\nlate words')
  })

  it('works as a web stream pair', async () => {
    const { port } = await echoServer()
    const socket = await connect({ hostname: '127.0.0.1', port })
    const { readable, writable } = socket.toWeb()
    const writer = writable.getWriter()
    await writer.write(new TextEncoder().encode('web '))
    await writer.close()
    let text = ''
    const reader = readable.getReader()
    for (let r = await reader.read(); !r.done; r = await reader.read()) text += new TextDecoder().decode(r.value)
    expect(text).toBe('web bye')
  })

  it('fails clearly: refused, bad options, timeout, abort', async () => {
    const closedPort = await listen(net.createServer())
    servers.pop()?.close()
    await new Promise((r) => setTimeout(r, 10))
    expect((await caught(() => connect({ hostname: '127.0.0.1', port: closedPort }))).code).toBe('ECONNREFUSED')
    expect((await caught(() => connect({ hostname: '127.0.0.1', port: 0 }))).code).toBe('ERR_INVALID_ARG_VALUE')
    const typo = await caught(() => connect({ hostname: '127.0.0.1', port: 1, timout: 5 } as never))
    expect(typo.message).toMatch(/timeout/)
    expect(
      (await caught(() => connect({ hostname: '127.0.0.1', port: 1, tls: { rejectUnauthorised: false } as never })))
        .message,
    ).toMatch(/rejectUnauthorized/)
    // A TLS server that never answers the handshake: the timeout covers it.
    const silent = await listen(net.createServer(() => {}))
    expect((await caught(() => connect({ hostname: '127.0.0.1', port: silent, tls: true, timeout: 100 }))).code).toBe(
      'ETIMEDOUT',
    )
    const ac = new AbortController()
    const pending = connect({ hostname: '127.0.0.1', port: silent, tls: true, signal: ac.signal })
    ac.abort()
    expect((await caught(() => pending)).code).toBe('ABORT_ERR')
    // Aborting after the connect destroys the socket with the abort error.
    const { port } = await echoServer()
    const ac2 = new AbortController()
    const socket = await connect({ hostname: '127.0.0.1', port, signal: ac2.signal })
    const errored = once(socket, 'error')
    ac2.abort()
    const [err] = (await errored) as [HypersockError]
    expect(err.code).toBe('ABORT_ERR')
  })
})

// The server over HTTP/2 (h2c and TLS).
import { execFile } from 'node:child_process'
import http2 from 'node:http2'
import { promisify } from 'node:util'
import { type Server, serve } from 'hypersock'
import { describe, expect, it } from 'vitest'
import { rawExchange, trackServers } from './helpers.js'

const run = promisify(execFile)
const track = trackServers()

async function start(options: Parameters<typeof serve>[0]): Promise<Server> {
  return track(await serve(options))
}

describe('serve: HTTP/2', () => {
  it('serves h2c by prior knowledge, many streams on one connection', async () => {
    const ports = new Set<number>()
    const server = await start({
      fetch(req) {
        ports.add(req.remotePort)
        return { headers: { 'x-version': req.httpVersion }, body: `${req.method} ${req.path} ${req.host}` }
      },
    })
    const session = http2.connect(server.url.href)
    const one = (path: string) =>
      new Promise<{ status: number; version: string; body: string }>((resolve, reject) => {
        const stream = session.request({ ':path': path })
        let body = ''
        let status = 0
        let version = ''
        stream.on('response', (h) => {
          status = Number(h[':status'])
          version = String(h['x-version'])
        })
        stream.setEncoding('utf8')
        stream.on('data', (c: string) => {
          body += c
        })
        stream.on('end', () => resolve({ status, version, body }))
        stream.on('error', reject)
      })
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => one(`/s${i}`)))
    session.close()
    expect(results.every((r) => r.status === 200 && r.version === '2')).toBe(true)
    expect(results[7]?.body).toBe(`GET /s7 127.0.0.1:${server.port}`)
    expect(ports.size).toBe(1)
  })

  it('talks h2c to curl --http2-prior-knowledge', async () => {
    const server = await start({ fetch: (req) => `v${req.httpVersion}` })
    const { stdout } = await run('curl', ['-sS', '--http2-prior-knowledge', server.url.href])
    expect(stdout).toBe('v2')
  })

  it('answers an h2c Upgrade request over HTTP/1.1 (the mechanism RFC 9113 deprecates)', async () => {
    const server = await start({ fetch: (req) => `v${req.httpVersion}` })
    const { stdout } = await run('curl', ['-sS', '--http2', '-i', server.url.href])
    expect(stdout).toMatch(/^HTTP\/1\.1 200/)
    expect(stdout.endsWith('v1.1')).toBe(true)
  })

  it('refuses h2c when http2 is off', async () => {
    const server = await start({ http2: false, fetch: () => 'x' })
    const reply = await rawExchange(server.port, 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n')
    // HTTP/1.1 alone: the preface is refused (closed, or a 4xx), never answered with SETTINGS.
    expect(reply === '' || reply.startsWith('HTTP/1.1 4')).toBe(true)
    expect((await fetch(server.url)).status).toBe(200)
  })
})

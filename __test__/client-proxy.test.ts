// Proxies (CONNECT tunnels with basic auth for https, forwarding for http, the environment
// variables) and unix-socket transport, against node:http peers.
import { once } from 'node:events'
import http from 'node:http'
import https from 'node:https'
import type net from 'node:net'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client, type HypersockError, ProxyError } from 'hypersock'
import { generateCertificate } from 'hypersock/testing'
import { afterEach, describe, expect, it } from 'vitest'
import { httpProxy } from './helpers.js'

const cleanups: (() => void)[] = []
afterEach(() => {
  for (const c of cleanups.splice(0)) c()
})

function track<T extends net.Server>(server: T): T {
  cleanups.push(() => {
    ;(server as unknown as http.Server).closeAllConnections?.()
    server.close()
  })
  return server
}

async function origin(secure: boolean, ca?: ReturnType<typeof generateCertificate>) {
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => res.end(`origin ${req.url}`)
  const server = track(
    secure && ca ? https.createServer(generateCertificate({ ca }), handler) : http.createServer(handler),
  )
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return `${secure ? 'https' : 'http'}://127.0.0.1:${(server.address() as AddressInfo).port}`
}

describe('client proxies', () => {
  it('tunnels https through CONNECT with basic auth', async () => {
    const ca = generateCertificate({ isCa: true })
    const target = await origin(true, ca)
    const p = await httpProxy(cleanups, 'user:pa ss')
    const client = new Client({ proxy: p.url.replace('pa ss', 'pa%20ss'), tls: { ca: ca.cert } })
    const res = await client.fetch(`${target}/secret`)
    expect(await res.text()).toBe('origin /secret')
    expect(res.tls?.protocol).toBe('TLSv1.3')
    expect(p.log.connects).toEqual([
      { target: new URL(target).host, auth: `Basic ${Buffer.from('user:pa ss').toString('base64')}` },
    ])
  })

  it('reports a refused tunnel with ERR_PROXY_AUTH_REQUIRED', async () => {
    const ca = generateCertificate({ isCa: true })
    const target = await origin(true, ca)
    const p = await httpProxy(cleanups, 'user:right')
    const bad = `http://user:wrong@${new URL(p.url).host}`
    const err = await new Client({ proxy: bad, tls: { ca: ca.cert } }).fetch(target).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(ProxyError)
    expect((err as HypersockError).code).toBe('ERR_PROXY_AUTH_REQUIRED')
  })

  it('forwards http requests in absolute form with Proxy-Authorization', async () => {
    const target = await origin(false)
    const p = await httpProxy(cleanups, 'fwd:secret')
    const res = await new Client({ proxy: p.url }).fetch(`${target}/plain?q=1`)
    expect(await res.text()).toBe('origin /plain?q=1')
    expect(p.log.forwards).toEqual([
      { url: `${target}/plain?q=1`, auth: `Basic ${Buffer.from('fwd:secret').toString('base64')}` },
    ])
  })

  it("reads HTTP_PROXY and NO_PROXY only with proxy: 'env'", async () => {
    const target = await origin(false)
    const p = await httpProxy(cleanups)
    const saved = { HTTP_PROXY: process.env.HTTP_PROXY, NO_PROXY: process.env.NO_PROXY }
    process.env.HTTP_PROXY = p.url
    process.env.NO_PROXY = 'example.invalid'
    cleanups.push(() => {
      for (const [k, v] of Object.entries(saved)) {
        if (v === undefined) delete process.env[k]
        else process.env[k] = v
      }
    })
    await (await new Client().fetch(`${target}/direct`)).text()
    expect(p.log.forwards.length).toBe(0)
    await (await new Client({ proxy: 'env' }).fetch(`${target}/via-env`)).text()
    expect(p.log.forwards.map((f) => f.url)).toEqual([`${target}/via-env`])
    process.env.NO_PROXY = '127.0.0.1'
    await (await new Client({ proxy: 'env' }).fetch(`${target}/bypassed`)).text()
    expect(p.log.forwards.length).toBe(1)
  })
})

describe('client unix socket transport', () => {
  it('sends requests over a unix socket path', async () => {
    const path = join(tmpdir(), `hypersock-${process.pid}-${Date.now()}.sock`)
    const server = track(http.createServer((req, res) => res.end(`unix ${req.url} host=${req.headers.host}`)))
    server.listen(path)
    await once(server, 'listening')
    const client = new Client({ socketPath: path })
    const res = await client.fetch('http://localhost/over-unix')
    expect(await res.text()).toBe('unix /over-unix host=localhost')
    const again = await client.fetch('http://localhost/again')
    expect(again.connectionId).toBe(res.connectionId)
    await again.text()
  })
})

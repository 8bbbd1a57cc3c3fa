// The WebSocket client through an HTTP CONNECT proxy: ws:// and wss:// tunnels with basic auth
// from the proxy URL, a refused tunnel (407), and the HTTP_PROXY/HTTPS_PROXY/NO_PROXY opt-in.
import { once } from 'node:events'
import http from 'node:http'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { type CloseEvent, type ErrorEvent, type HypersockError, ProxyError, WebSocket } from 'hypersock'
import { generateCertificate } from 'hypersock/testing'
import { afterEach, describe, expect, it } from 'vitest'
import { WebSocketServer } from 'ws'
import { httpProxy } from './helpers.js'

const cleanups: Array<() => void> = []
afterEach(() => {
  for (const c of cleanups.splice(0)) c()
})

/** A `ws` echo server over node:http, or node:https with a certificate signed by `ca`. */
async function echoServer(ca?: ReturnType<typeof generateCertificate>) {
  const server = ca ? https.createServer(generateCertificate({ ca })) : http.createServer()
  const upgrades: http.IncomingHttpHeaders[] = []
  const wss = new WebSocketServer({ server })
  wss.on('connection', (sock, req) => {
    upgrades.push(req.headers)
    sock.on('message', (d, isBinary) => sock.send(d, { binary: isBinary }))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  cleanups.push(() => {
    for (const c of wss.clients) c.terminate()
    wss.close()
    server.close()
  })
  const port = (server.address() as AddressInfo).port
  return { url: `${ca ? 'wss' : 'ws'}://127.0.0.1:${port}/echo`, host: `127.0.0.1:${port}`, upgrades }
}

async function echoOnce(ws: WebSocket, text: string): Promise<unknown> {
  await once(ws, 'open')
  const got = new Promise((r) => ws.addEventListener('message', (e) => r((e as MessageEvent).data), { once: true }))
  ws.send(text)
  const data = await got
  const closed = new Promise<CloseEvent>((r) => ws.addEventListener('close', (e) => r(e as CloseEvent)))
  ws.close(1000)
  expect((await closed).code).toBe(1000)
  return data
}

function setEnv(vars: Record<string, string | undefined>): void {
  const saved = Object.fromEntries(Object.keys(vars).map((k) => [k, process.env[k]]))
  cleanups.push(() => {
    for (const [k, v] of Object.entries(saved)) {
      if (v === undefined) delete process.env[k]
      else process.env[k] = v
    }
  })
  for (const [k, v] of Object.entries(vars)) {
    if (v === undefined) delete process.env[k]
    else process.env[k] = v
  }
}

const basic = (credentials: string) => `Basic ${Buffer.from(credentials).toString('base64')}`

describe('WebSocket client through an HTTP proxy', () => {
  it('tunnels ws:// through CONNECT with basic auth from the proxy URL', async () => {
    const origin = await echoServer()
    const proxy = await httpProxy(cleanups, 'user:pa ss')
    const ws = new WebSocket(origin.url, [], { proxy: proxy.url.replace('pa ss', 'pa%20ss') })
    expect(await echoOnce(ws, 'through the tunnel')).toBe('through the tunnel')
    expect(proxy.log.connects).toEqual([{ target: origin.host, auth: basic('user:pa ss') }])
    expect(origin.upgrades.length).toBe(1)
    expect(origin.upgrades[0]?.['proxy-authorization']).toBeUndefined()
  })

  it('tunnels wss:// through CONNECT and verifies the origin certificate', async () => {
    const ca = generateCertificate({ isCa: true })
    const origin = await echoServer(ca)
    const proxy = await httpProxy(cleanups, 'wss:secret')
    const ws = new WebSocket(origin.url, [], { proxy: { url: proxy.url }, tls: { ca: ca.cert } })
    expect(await echoOnce(ws, 'secure '.repeat(1000))).toBe('secure '.repeat(1000))
    expect(proxy.log.connects).toEqual([{ target: origin.host, auth: basic('wss:secret') }])
    const second = new WebSocket(origin.url, [], { proxy: proxy.url, tls: { ca: ca.cert } })
    await echoOnce(second, 'again')
    expect(proxy.log.connects.length).toBe(2)
  })

  it('fails with ERR_PROXY_AUTH_REQUIRED when the proxy answers 407', async () => {
    const origin = await echoServer()
    const proxy = await httpProxy(cleanups, 'user:right')
    const ws = new WebSocket(origin.url, [], { proxy: `http://user:wrong@${new URL(proxy.url).host}` })
    const error = new Promise<ErrorEvent>((r) => ws.addEventListener('error', (e) => r(e as ErrorEvent)))
    const closed = new Promise<CloseEvent>((r) => ws.addEventListener('close', (e) => r(e as CloseEvent)))
    const err = (await error).error as HypersockError
    expect(err).toBeInstanceOf(ProxyError)
    expect(err.code).toBe('ERR_PROXY_AUTH_REQUIRED')
    expect((await closed).code).toBe(1006)
    expect(ws.readyState).toBe(WebSocket.CLOSED)
    expect(proxy.log.connects.length).toBe(1)
    expect(origin.upgrades.length).toBe(0)
  })

  it("reads HTTP_PROXY, HTTPS_PROXY and NO_PROXY only with proxy: 'env'", async () => {
    const ca = generateCertificate({ isCa: true })
    const plain = await echoServer()
    const secure = await echoServer(ca)
    const forWs = await httpProxy(cleanups)
    const forWss = await httpProxy(cleanups)
    setEnv({
      HTTP_PROXY: forWs.url,
      HTTPS_PROXY: forWss.url,
      NO_PROXY: 'example.invalid',
      http_proxy: undefined,
      https_proxy: undefined,
      no_proxy: undefined,
    })
    await echoOnce(new WebSocket(plain.url), 'direct')
    expect(forWs.log.connects.length).toBe(0)
    await echoOnce(new WebSocket(plain.url, [], { proxy: 'env' }), 'via HTTP_PROXY')
    await echoOnce(new WebSocket(secure.url, [], { proxy: 'env', tls: { ca: ca.cert } }), 'via HTTPS_PROXY')
    expect(forWs.log.connects.map((c) => c.target)).toEqual([plain.host])
    expect(forWss.log.connects.map((c) => c.target)).toEqual([secure.host])
    await echoOnce(new WebSocket(plain.url, [], { proxy: { env: true, noProxy: ['127.0.0.1'] } }), 'bypassed')
    process.env.NO_PROXY = '127.0.0.1'
    await echoOnce(new WebSocket(plain.url, [], { proxy: 'env' }), 'bypassed by NO_PROXY')
    expect(forWs.log.connects.length).toBe(1)
  })
})

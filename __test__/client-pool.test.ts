// The connection pool: keep-alive reuse, per-origin limit, idle eviction, stale connections,
// stats.
import { once } from 'node:events'
import http from 'node:http'
import type { AddressInfo, Socket } from 'node:net'
import { Client, type HypersockError } from 'hypersock'
import { afterEach, describe, expect, it } from 'vitest'

const cleanups: (() => void)[] = []
afterEach(() => {
  for (const c of cleanups.splice(0)) c()
})

async function serve(handler: http.RequestListener) {
  const sockets = new Set<Socket>()
  const server = http.createServer(handler)
  server.on('connection', (s) => sockets.add(s))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  cleanups.push(() => {
    server.closeAllConnections()
    server.close()
  })
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`, sockets }
}

describe('client pool', () => {
  it('limits connections per origin; extra requests wait for a free one', async () => {
    let active = 0
    let peak = 0
    const { url, sockets } = await serve((_req, res) => {
      active++
      peak = Math.max(peak, active)
      setImmediate(() => {
        active--
        res.end('ok')
      })
    })
    const client = new Client({ maxConnectionsPerHost: 2 })
    const bodies = await Promise.all(Array.from({ length: 20 }, () => client.fetch(url).then((r) => r.text())))
    expect(bodies.every((b) => b === 'ok')).toBe(true)
    expect(sockets.size).toBeLessThanOrEqual(2)
    expect(peak).toBeLessThanOrEqual(2)
    expect(client.stats.opened).toBeLessThanOrEqual(2)
  })

  it('closes idle connections after poolIdleTimeout', async () => {
    const { url, sockets } = await serve((_req, res) => res.end('x'))
    const client = new Client({ poolIdleTimeout: 300 })
    await (await client.fetch(url)).text()
    expect(client.stats.open).toBe(1)
    const [socket] = [...sockets]
    if (socket && !socket.closed) await once(socket, 'close')
    // The connection task drops its socket just after the FIN; give it a moment to finish.
    for (let i = 0; i < 200 && client.stats.open !== 0; i++) await new Promise((r) => setTimeout(r, 10))
    expect(client.stats.open).toBe(0)
    await (await client.fetch(url)).text()
    expect(client.stats.opened).toBe(2)
  })

  it('retries an idempotent request once, transparently, when a pooled connection was dead', async () => {
    const perSocket = new Map<Socket, number>()
    const { url } = await serve((req, res) => {
      const n = (perSocket.get(req.socket) ?? 0) + 1
      perSocket.set(req.socket, n)
      // The second request on a kept-alive connection finds it closed by the server.
      if (n === 2) return req.socket.destroy()
      res.end(`ok ${req.method}`)
    })
    const client = new Client()
    await (await client.fetch(url)).text()
    const res = await client.fetch(url)
    expect(await res.text()).toBe('ok GET')
    expect(res.attempts).toBe(1)
    await (await client.fetch(url)).text()
    const err = await client.fetch(url, { method: 'POST', body: 'x' }).catch((e: unknown) => e)
    expect((err as HypersockError).code).toBe('ECONNRESET')
  })

  it('counts open and opened connections', async () => {
    const { url } = await serve((_req, res) => res.end('x'))
    const client = new Client()
    expect(client.stats).toEqual({ open: 0, opened: 0 })
    await Promise.all(Array.from({ length: 3 }, () => client.fetch(url).then((r) => r.text())))
    expect(client.stats.opened).toBeGreaterThanOrEqual(1)
    expect(client.stats.open).toBe(client.stats.opened)
  })
})

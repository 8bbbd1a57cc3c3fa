// Leak check: many requests and connections, then memory and open-connection counts settle.
import { once } from 'node:events'
import http from 'node:http'
import { serve } from 'hypersock'
import { describe, expect, it } from 'vitest'
import WS from 'ws'

function get(url: URL, agent: http.Agent | false): Promise<number> {
  return new Promise((resolve, reject) => {
    http
      .get(url, { agent }, (res) => {
        res.resume()
        res.on('end', () => resolve(res.statusCode ?? 0))
      })
      .on('error', reject)
  })
}

async function settle(check: () => boolean): Promise<void> {
  for (let i = 0; i < 500 && !check(); i++) await new Promise((r) => setTimeout(r, 10))
}

describe('stress: memory and connections settle', () => {
  it('serves 6,000 requests on fresh and kept-alive connections without growing memory or leaking connections', async () => {
    const payload = 'x'.repeat(4096)
    const server = await serve({
      async fetch(req) {
        if (req.method === 'POST') return `${(await req.bytes()).length}`
        return payload
      },
    })
    try {
      const round = async () => {
        const agent = new http.Agent({ keepAlive: true, maxSockets: 16 })
        const statuses = await Promise.all(
          Array.from({ length: 250 }, (_, i) => get(new URL(`/r${i}`, server.url), i % 5 === 0 ? false : agent)),
        )
        agent.destroy()
        return statuses.every((s) => s === 200)
      }
      expect(await round()).toBe(true)
      globalThis.gc?.()
      const before = process.memoryUsage().rss
      for (let i = 0; i < 23; i++) expect(await round()).toBe(true)
      await settle(() => server.stats().connectionsOpen === 0)
      expect(server.stats().connectionsOpen).toBe(0)
      expect(server.stats().requestsInFlight).toBe(0)
      expect(server.stats().requestsTotal).toBe(24 * 250)
      globalThis.gc?.()
      const grown = process.memoryUsage().rss - before
      expect(grown).toBeLessThan(64 * 1024 * 1024)
    } finally {
      await server.stop({ graceful: false })
    }
  })

  it('opens and closes 300 WebSockets and ends with none open', async () => {
    let closes = 0
    const server = await serve({
      fetch: () => 'x',
      websocket: {
        message: (ws, data) => ws.send(data),
        close: () => {
          closes++
        },
      },
    })
    try {
      const url = server.url.href.replace('http:', 'ws:')
      for (let batch = 0; batch < 6; batch++) {
        const clients = Array.from({ length: 50 }, () => new WS(url))
        await Promise.all(clients.map((c) => once(c, 'open')))
        await Promise.all(
          clients.map(async (c, i) => {
            c.send(`m${i}`)
            await once(c, 'message')
            if (i % 2) c.terminate()
            else c.close(1000)
          }),
        )
      }
      await settle(() => closes === 300 && server.webSocketCount === 0)
      expect(closes).toBe(300)
      expect(server.webSocketCount).toBe(0)
      await settle(() => server.stats().webSocketsOpen === 0)
      expect(server.stats().webSocketsOpen).toBe(0)
    } finally {
      await server.stop({ graceful: false })
    }
  })
})

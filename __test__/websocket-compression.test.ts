// permessage-deflate against ws.
import { once } from 'node:events'
import type net from 'node:net'
import { serveWebSocket, WebSocket } from 'hypersock'
import { describe, expect, it } from 'vitest'
import WS, { WebSocketServer } from 'ws'
import { closeEvent, deferred, nextMessage, trackServers, wsUrl } from './helpers.js'

const track = trackServers()

describe('permessage-deflate interop with ws', () => {
  const big = JSON.stringify(Array.from({ length: 2000 }, (_, i) => ({ i, name: `item ${i}` })))

  it('ws client -> hypersock server, with and without compression', async () => {
    const server = track(await serveWebSocket({ compression: true, message: (ws, d) => ws.send(d) }))
    for (const perMessageDeflate of [true, false]) {
      const client = new WS(wsUrl(server), { perMessageDeflate })
      await once(client, 'open')
      expect(client.extensions.includes('permessage-deflate')).toBe(perMessageDeflate)
      for (const msg of [big, 'small', big]) {
        client.send(msg)
        const [data, isBinary] = await once(client, 'message')
        expect([String(data), isBinary]).toEqual([msg, false])
      }
      client.send(Buffer.from(big))
      const [bin, isBin] = await once(client, 'message')
      expect([(bin as Buffer).equals(Buffer.from(big)), isBin]).toEqual([true, true])
      client.close(1000)
      await once(client, 'close')
    }
  })

  it('hypersock client -> ws server, with and without compression, with negotiated parameters', async () => {
    for (const perMessageDeflate of [
      { threshold: 0, serverNoContextTakeover: true, clientMaxWindowBits: 10 },
      false,
    ] as const) {
      const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate })
      await once(wss, 'listening')
      wss.on('connection', (sock) => sock.on('message', (d, isBinary) => sock.send(d, { binary: isBinary })))
      try {
        const port = (wss.address() as net.AddressInfo).port
        const ws = new WebSocket(`ws://127.0.0.1:${port}/`)
        await once(ws, 'open')
        if (perMessageDeflate) {
          expect(ws.extensions).toContain('permessage-deflate')
          expect(ws.extensions).toContain('server_no_context_takeover')
          expect(ws.extensions).toContain('client_max_window_bits=10')
        } else expect(ws.extensions).toBe('')
        for (const msg of [big, 'x', big]) {
          ws.send(msg)
          expect(await nextMessage(ws)).toBe(msg)
        }
        ws.close()
        await closeEvent(ws)
      } finally {
        wss.close()
      }
    }
  })

  it('hypersock client <-> hypersock server with compression negotiated', async () => {
    const server = track(
      await serveWebSocket({
        compression: { serverMaxWindowBits: 9, clientNoContextTakeover: true },
        message: (ws, d) => ws.send(d),
      }),
    )
    const ws = new WebSocket(wsUrl(server))
    await once(ws, 'open')
    expect(ws.extensions).toBe('permessage-deflate; client_no_context_takeover; server_max_window_bits=9')
    for (const msg of [big, big.slice(10), 'tiny']) {
      ws.send(msg)
      expect(await nextMessage(ws)).toBe(msg)
    }
    ws.close()
    await closeEvent(ws)
  })

  it('closes with 1009 when a compressed message inflates over maxMessageSize', async () => {
    const closed = deferred<number>()
    const server = track(
      await serveWebSocket({ compression: true, maxMessageSize: 10_000, close: (_ws, c) => closed.resolve(c) }),
    )
    const client = new WS(wsUrl(server), { perMessageDeflate: { threshold: 0 } })
    await once(client, 'open')
    // 100 kB of zeros compresses to a few hundred bytes on the wire.
    client.send(Buffer.alloc(100_000))
    const [code] = await once(client, 'close')
    expect(code).toBe(1009)
    expect(await closed.promise).toBe(1009)
  })
})

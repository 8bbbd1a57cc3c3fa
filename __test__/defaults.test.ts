// The defaults users get when they pass no options. They live in one place, the engine's
// `Default` impls (crates/core); the TS layer passes what it was not given on as undefined. These
// tests observe the role-specific ones through the public API.
import { once } from 'node:events'
import type net from 'node:net'
import { serve, serveWebSocket, WebSocket } from 'hypersock'
import { describe, expect, it } from 'vitest'
import WS, { WebSocketServer } from 'ws'
import { closeEvent, trackServers, wsUrl } from './helpers.js'

const track = trackServers()
const MiB = 1024 * 1024

describe('defaults with no options', () => {
  it('serve listens on 127.0.0.1 and a free port', async () => {
    const server = track(await serve({ fetch: () => 'ok' }))
    expect(server.hostname).toBe('127.0.0.1')
    expect(server.port).toBeGreaterThan(0)
    expect(await (await fetch(`http://127.0.0.1:${server.port}/`)).text()).toBe('ok')
  })

  it('a WebSocket server does not compress; the client offers permessage-deflate', async () => {
    const server = track(await serveWebSocket({ message: (ws, d) => ws.send(d) }))
    const peer = new WS(wsUrl(server), { perMessageDeflate: true })
    await once(peer, 'open')
    expect(peer.extensions).toBe('')
    peer.close()

    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: true })
    await once(wss, 'listening')
    try {
      const ws = new WebSocket(`ws://127.0.0.1:${(wss.address() as net.AddressInfo).port}/`)
      await new Promise((r) => ws.addEventListener('open', r, { once: true }))
      expect(ws.extensions).toContain('permessage-deflate')
      ws.close()
      await closeEvent(ws)
    } finally {
      for (const c of wss.clients) c.terminate()
      wss.close()
    }
  })

  it('a WebSocket server takes messages up to 16 MiB and closes 1009 above', async () => {
    const server = track(await serveWebSocket({ message: (ws, d) => ws.send(String((d as Buffer).length)) }))
    const ws = new WebSocket(wsUrl(server))
    ws.binaryType = 'arraybuffer'
    await new Promise((r) => ws.addEventListener('open', r, { once: true }))
    const reply = new Promise((r) => ws.addEventListener('message', (e) => r((e as MessageEvent).data), { once: true }))
    ws.send(new Uint8Array(16 * MiB))
    expect(await reply).toBe(String(16 * MiB))
    const closed = closeEvent(ws)
    ws.send(new Uint8Array(16 * MiB + 1))
    expect((await closed).code).toBe(1009)
  })

  it('a WebSocket client takes messages up to 64 MiB (more than a server does)', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, maxPayload: 128 * MiB })
    await once(wss, 'listening')
    wss.on('connection', (sock) => sock.on('message', () => sock.send(Buffer.alloc(32 * MiB, 7))))
    try {
      const ws = new WebSocket(`ws://127.0.0.1:${(wss.address() as net.AddressInfo).port}/`)
      ws.binaryType = 'arraybuffer'
      await new Promise((r) => ws.addEventListener('open', r, { once: true }))
      const got = new Promise<ArrayBuffer>((r) =>
        ws.addEventListener('message', (e) => r((e as MessageEvent).data as ArrayBuffer), { once: true }),
      )
      ws.send('go')
      expect((await got).byteLength).toBe(32 * MiB)
      ws.close()
      await closeEvent(ws)
    } finally {
      for (const c of wss.clients) c.terminate()
      wss.close()
    }
  })
})

// serveWebSocket (the WebSocket-only server) and the client's dial options.
import { once } from 'node:events'
import net from 'node:net'
import { type HypersockError, serveWebSocket, WebSocket } from 'hypersock'
import { describe, expect, it } from 'vitest'
import { WebSocketServer } from 'ws'
import { closeEvent, errorEvent, nextMessage, trackServers } from './helpers.js'

const track = trackServers()

describe('standalone server and client dial options', () => {
  it('serveWebSocket answers plain HTTP with 426 and echoes over IPv6', async () => {
    const server = track(await serveWebSocket({ hostname: '::1', message: (ws, d) => ws.send(d) }))
    const res = await rawExchangeV6(server.port, 'GET / HTTP/1.1\r\nHost: x\r\n\r\n')
    expect(res).toMatch(/^HTTP\/1\.1 426/)
    const ws = new WebSocket(`ws://[::1]:${server.port}/`)
    await once(ws, 'open')
    ws.send('v6')
    expect(await nextMessage(ws)).toBe('v6')
    ws.close()
    await closeEvent(ws)
  })

  it('times out a handshake the server never answers with ETIMEDOUT', async () => {
    const silent = net.createServer(() => {})
    silent.listen(0, '127.0.0.1')
    await once(silent, 'listening')
    try {
      const port = (silent.address() as net.AddressInfo).port
      const ws = new WebSocket(`ws://127.0.0.1:${port}/`, [], { handshakeTimeout: 200 })
      const [error, close] = [errorEvent(ws), closeEvent(ws)]
      expect(((await error).error as HypersockError).code).toBe('ETIMEDOUT')
      expect((await close).code).toBe(1006)
    } finally {
      silent.close()
    }
  })

  it('offers no extension when compression is off', async () => {
    const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: true })
    await once(wss, 'listening')
    try {
      const port = (wss.address() as net.AddressInfo).port
      // With compression off the client offers nothing, and ws accepts nothing: a clean open.
      const ws = new WebSocket(`ws://127.0.0.1:${port}/`, [], { compression: false })
      await once(ws, 'open')
      expect(ws.extensions).toBe('')
      ws.close()
      await closeEvent(ws)
    } finally {
      wss.close()
    }
  })
})

async function rawExchangeV6(port: number, data: string): Promise<string> {
  const socket = net.connect(port, '::1')
  await once(socket, 'connect')
  const chunks: Buffer[] = []
  socket.on('data', (c: Buffer) => {
    chunks.push(c)
    if (Buffer.concat(chunks).toString('latin1').includes('WebSocket\n')) socket.destroy()
  })
  socket.write(data)
  await once(socket, 'close')
  return Buffer.concat(chunks).toString('latin1')
}

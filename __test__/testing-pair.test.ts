// hypersock/testing's webSocketPair: a handler under test with a client connected to it.
import { Hub, type ServerWebSocket } from 'hypersock'
import { webSocketPair } from 'hypersock/testing'
import { describe, expect, it } from 'vitest'
import { nextMessage } from './helpers.js'

describe('webSocketPair', () => {
  it('runs the handler on a real connection: open, messages both ways, rooms, close', async () => {
    const opened: ServerWebSocket[] = []
    const hub = new Hub()
    const pair = await webSocketPair({
      hub,
      open(ws) {
        opened.push(ws)
        hub.join(ws, 'lobby')
      },
      message: (ws, data) => ws.send(`echo ${String(data)}`),
    })
    expect(opened).toHaveLength(1)
    pair.client.send('one')
    expect(await nextMessage(pair.client)).toBe('echo one')
    const published = nextMessage(pair.client)
    hub.publish('lobby', 'to the room')
    expect(pair.server.hub).toBe(hub)
    expect(await published).toBe('to the room')
    await pair.close()
    expect(pair.client.readyState).toBeGreaterThanOrEqual(pair.client.CLOSING)
  })

  it('rejects when the handler refuses the upgrade', async () => {
    await expect(webSocketPair({ upgrade: () => ({ status: 403 }), message() {} })).rejects.toThrow(/refused/)
  })
})

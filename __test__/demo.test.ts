import { once } from 'node:events'
import { type CloseEvent, type Server, WebSocket } from 'hypersock'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
// @ts-expect-error: the example is plain JavaScript without type declarations
import { startChat } from '../examples/chat.mjs'

let server: Server
beforeAll(async () => {
  server = await startChat({ port: 0 })
})
afterAll(async () => {
  await server.stop({ graceful: false })
})

type ChatEvent = { type: string; name?: string; text?: string; count?: number }

/** A chat client that records every event it receives. */
async function join(): Promise<{
  ws: WebSocket
  events: ChatEvent[]
  next: (type: string, match?: (e: ChatEvent) => boolean) => Promise<ChatEvent>
}> {
  const ws = new WebSocket(new URL('/chat', server.url).href.replace('http:', 'ws:'))
  const events: ChatEvent[] = []
  const waiters: Array<{ type: string; match: (e: ChatEvent) => boolean; resolve: (e: ChatEvent) => void }> = []
  ws.addEventListener('message', (e) => {
    const event = JSON.parse(String((e as MessageEvent).data)) as ChatEvent
    events.push(event)
    const i = waiters.findIndex((w) => w.type === event.type && w.match(event))
    if (i >= 0) waiters.splice(i, 1)[0]?.resolve(event)
  })
  const next = (type: string, match: (e: ChatEvent) => boolean = () => true) =>
    new Promise<ChatEvent>((resolve) => waiters.push({ type, match, resolve }))
  // The server greets every new page with the member count: once it arrives, the server knows us.
  const greeted = next('count')
  await once(ws, 'open')
  await greeted
  return { ws, events, next }
}

describe('demo chat (npm start)', () => {
  it('serves the chat page over HTTP', async () => {
    const res = await fetch(server.url)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8')
    const html = await res.text()
    expect(html).toContain('<title>hypersock chat</title>')
    expect(html).toContain("+ '/chat'")
    expect((await fetch(new URL('/missing', server.url))).status).toBe(404)
  })

  it('delivers every message to every open page', async () => {
    const alice = await join()
    const aliceSeesBob = alice.next('count', (e) => e.count === 2)
    const bob = await join()
    await aliceSeesBob
    const aliceGets = alice.next('msg')
    const bobGets = bob.next('msg')
    alice.ws.send(JSON.stringify({ type: 'msg', name: 'alice', text: 'hi bob' }))
    expect(await aliceGets).toMatchObject({ type: 'msg', name: 'alice', text: 'hi bob' })
    expect(await bobGets).toMatchObject({ type: 'msg', name: 'alice', text: 'hi bob' })
    const countAfterLeave = alice.next('count', (e) => e.count === 1)
    bob.ws.close()
    expect((await countAfterLeave).count).toBe(1)
    alice.ws.close()
    await once(alice.ws, 'close')
  })

  it('closes a client that sends something other than JSON with 1007', async () => {
    const eve = await join()
    const closed = new Promise<CloseEvent>((r) => eve.ws.addEventListener('close', (e) => r(e as CloseEvent)))
    eve.ws.send('not json')
    expect((await closed).code).toBe(1007)
  })
})

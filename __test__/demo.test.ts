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

type ChatEvent = { type: string; room?: string; name?: string; text?: string; count?: number }

/** A chat client that records every event it receives. */
async function connect(): Promise<{
  ws: WebSocket
  events: ChatEvent[]
  send: (msg: object) => void
  next: (type: string, match?: (e: ChatEvent) => boolean) => Promise<ChatEvent>
}> {
  const ws = new WebSocket(new URL('/chat', server.url).href.replace('http:', 'ws:'))
  const events: ChatEvent[] = []
  const waiters: Array<{ type: string; match: (e: ChatEvent) => boolean; resolve: (e: ChatEvent) => void }> = []
  ws.addEventListener('message', (e) => {
    const event = JSON.parse(String((e as MessageEvent).data)) as ChatEvent
    events.push(event)
    for (let i = 0; i < waiters.length; i++) {
      const w = waiters[i]
      if (w && w.type === event.type && w.match(event)) {
        waiters.splice(i, 1)
        w.resolve(event)
        break
      }
    }
  })
  const next = (type: string, match: (e: ChatEvent) => boolean = () => true) =>
    new Promise<ChatEvent>((resolve) => waiters.push({ type, match, resolve }))
  // The server puts every new page in the lobby: once that arrives, the server knows us.
  const joined = next('joined', (e) => e.room === 'lobby')
  await once(ws, 'open')
  await joined
  return { ws, events, next, send: (msg) => ws.send(JSON.stringify(msg)) }
}

describe('demo chat with rooms (npm start)', () => {
  it('serves the chat page over HTTP', async () => {
    const res = await fetch(server.url)
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8')
    const html = await res.text()
    expect(html).toContain('<title>hypersock chat</title>')
    expect(html).toContain("+ '/chat'")
    expect((await fetch(new URL('/missing', server.url))).status).toBe(404)
  })

  it('delivers messages to the members of a room only, with member counts on join and leave', async () => {
    const alice = await connect()
    const bob = await connect()
    const carol = await connect()

    const aliceSeesTwo = alice.next('count', (e) => e.room === 'games' && e.count === 2)
    alice.send({ type: 'join', room: 'games' })
    await alice.next('joined', (e) => e.room === 'games')
    bob.send({ type: 'join', room: 'games' })
    await bob.next('joined', (e) => e.room === 'games')
    await aliceSeesTwo

    const aliceGets = alice.next('msg', (e) => e.room === 'games')
    const bobGets = bob.next('msg', (e) => e.room === 'games')
    alice.send({ type: 'msg', room: 'games', name: 'alice', text: 'gg bob' })
    expect(await aliceGets).toMatchObject({ room: 'games', name: 'alice', text: 'gg bob' })
    expect(await bobGets).toMatchObject({ room: 'games', name: 'alice', text: 'gg bob' })

    // Carol is only in the lobby: a lobby message after the games one proves she never got it.
    const carolLobby = carol.next('msg', (e) => e.room === 'lobby')
    bob.send({ type: 'msg', room: 'lobby', name: 'bob', text: 'hi all' })
    expect(await carolLobby).toMatchObject({ name: 'bob', text: 'hi all' })
    expect(carol.events.filter((e) => e.type === 'msg').map((e) => e.room)).toEqual(['lobby'])

    // Sending to a room one has not joined is refused.
    const refused = carol.next('error')
    carol.send({ type: 'msg', room: 'games', name: 'carol', text: 'let me in' })
    expect((await refused).text).toContain('join games first')

    const aliceSeesOne = alice.next('count', (e) => e.room === 'games' && e.count === 1)
    bob.send({ type: 'leave', room: 'games' })
    await bob.next('left', (e) => e.room === 'games')
    await aliceSeesOne
    // Closing a page updates the counts of its rooms.
    const lobbyDrops = alice.next('count', (e) => e.room === 'lobby' && e.count === 2)
    carol.ws.close()
    await lobbyDrops
    for (const c of [alice, bob]) c.ws.close()
    await once(alice.ws, 'close')
  })

  it('closes a client that sends something other than JSON with 1007', async () => {
    const eve = await connect()
    const closed = new Promise<CloseEvent>((r) => eve.ws.addEventListener('close', (e) => r(e as CloseEvent)))
    eve.ws.send('not json')
    expect((await closed).code).toBe(1007)
  })
})

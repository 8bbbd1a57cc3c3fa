// The hypersock demo: a chat with rooms, served over HTTP with its WebSocket on the same port.
// Run `npm start`, open the printed URL in two browser tabs, join rooms and talk between them.
// Every page starts in `lobby`. Messages go to one room and are fanned out by the Hub in Rust.
// With REDIS_URL set (e.g. redis://127.0.0.1:6379) rooms span every process using that Redis:
// start two with PORT=3000 and PORT=3001 and talk across them.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Hub, RedisAdapter, serve } from 'hypersock'

const page = readFileSync(new URL('./chat.html', import.meta.url), 'utf8')
const MAX_TEXT = 2000
const MAX_NAME = 40
const MAX_ROOMS = 10
const ROOM = /^[\w-]{1,32}$/

/**
 * Starts the chat server.
 * @param {{ port?: number, hostname?: string, redisUrl?: string }} [options]
 */
export async function startChat(options = {}) {
  const adapter = options.redisUrl ? new RedisAdapter({ url: options.redisUrl, channel: 'hypersock-chat' }) : undefined
  adapter?.on('error', (e) => console.error(`chat: Redis: ${e.message} (local rooms keep working; retrying)`))
  adapter?.on('reconnect', () => console.error('chat: Redis: reconnected'))
  const hub = new Hub({ adapter })
  const send = (ws, event) => ws.send(JSON.stringify(event))
  /** Tells a room its member count (across processes when Redis is on). */
  const announce = async (room) => {
    let count = hub.roomSize(room)
    if (adapter?.connected) count = await hub.clusterRoomSize(room).catch(() => count)
    hub.publish(room, JSON.stringify({ type: 'count', room, count }))
  }
  const join = (ws, room) => {
    if (!ROOM.test(room) || ws.data.rooms.size >= MAX_ROOMS) return send(ws, { type: 'error', text: 'invalid room' })
    if (!hub.join(ws, room)) return
    ws.data.rooms.add(room)
    send(ws, { type: 'joined', room })
    announce(room)
  }
  const leave = (ws, room) => {
    if (!hub.leave(ws, room)) return
    ws.data.rooms.delete(room)
    send(ws, { type: 'left', room })
    announce(room)
  }

  const server = await serve({
    port: options.port ?? 0,
    hostname: options.hostname ?? '127.0.0.1',
    fetch(req) {
      const path = req.path
      if (path === '/' || path === '/index.html') {
        return { headers: { 'content-type': 'text/html; charset=utf-8' }, body: page }
      }
      if (path === '/health') return { headers: { 'content-type': 'application/json' }, body: '{"ok":true}' }
      return { status: 404, body: 'not found\n' }
    },
    websocket: {
      hub,
      maxMessageSize: 16 * 1024,
      pingInterval: 30_000,
      open(ws) {
        ws.data = { rooms: new Set() }
        join(ws, 'lobby')
      },
      message(ws, data, isBinary) {
        if (isBinary) return ws.close(1003, 'text only')
        let msg
        try {
          msg = JSON.parse(data)
        } catch {
          return ws.close(1007, 'messages are JSON')
        }
        const room = String(msg.room ?? '')
        if (msg.type === 'join') return join(ws, room)
        if (msg.type === 'leave') return leave(ws, room)
        if (msg.type !== 'msg') return
        if (!hub.has(ws, room)) return send(ws, { type: 'error', text: `join ${room} first` })
        const name = String(msg.name ?? 'anonymous').slice(0, MAX_NAME) || 'anonymous'
        const text = String(msg.text ?? '').slice(0, MAX_TEXT)
        if (text) hub.publish(room, JSON.stringify({ type: 'msg', room, name, text, at: Date.now() }))
      },
      close(ws) {
        // The hub has already taken the connection out of its rooms: tell them the new counts.
        for (const room of ws.data?.rooms ?? []) announce(room)
      },
    },
  })
  return server
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.env.PORT ?? 3000)
  const redisUrl = process.env.REDIS_URL || undefined
  const server = await startChat({ port, hostname: process.env.HOST ?? '127.0.0.1', redisUrl })
  const mode = redisUrl ? `rooms shared through Redis at ${redisUrl}` : 'in-process rooms'
  console.log(`hypersock chat (${mode}): open ${server.url.href} in two browser tabs (Ctrl-C to stop)`)
  const stop = async () => {
    await server.stop({ timeout: 2000 })
    process.exit(0)
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}

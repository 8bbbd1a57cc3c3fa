// The hypersock demo: a chat page over HTTP with its WebSocket on the same port.
// Run `npm start`, open the printed URL in two browser tabs and talk between them.
import { readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import { serve } from 'hypersock'

const page = readFileSync(new URL('./chat.html', import.meta.url), 'utf8')
const MAX_TEXT = 2000
const MAX_NAME = 40

/**
 * Starts the chat server. Every message goes to every open page.
 * @param {{ port?: number, hostname?: string }} [options]
 */
export async function startChat(options = {}) {
  const sockets = new Set()
  const broadcast = (event) => {
    const text = JSON.stringify(event)
    for (const ws of sockets) ws.send(text)
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
      maxMessageSize: 16 * 1024,
      open(ws) {
        sockets.add(ws)
        broadcast({ type: 'count', count: sockets.size })
      },
      message(ws, data, isBinary) {
        if (isBinary) return ws.close(1003, 'text only')
        let msg
        try {
          msg = JSON.parse(data)
        } catch {
          return ws.close(1007, 'messages are JSON')
        }
        const name = String(msg.name ?? 'anonymous').slice(0, MAX_NAME) || 'anonymous'
        const text = String(msg.text ?? '').slice(0, MAX_TEXT)
        if (msg.type === 'msg' && text) broadcast({ type: 'msg', name, text, at: Date.now() })
      },
      close(ws) {
        sockets.delete(ws)
        broadcast({ type: 'count', count: sockets.size })
      },
    },
  })
  return server
}

if (process.argv[1] === fileURLToPath(import.meta.url)) {
  const port = Number(process.env.PORT ?? 3000)
  const server = await startChat({ port, hostname: process.env.HOST ?? '127.0.0.1' })
  console.log(`hypersock chat: open ${server.url.href} in two browser tabs (Ctrl-C to stop)`)
  const stop = async () => {
    await server.stop({ timeout: 2000 })
    process.exit(0)
  }
  process.on('SIGINT', stop)
  process.on('SIGTERM', stop)
}

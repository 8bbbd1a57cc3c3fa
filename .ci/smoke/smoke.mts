// Smoke test of an installed hypersock's typings: checked with tsc --strict (module nodenext,
// skipLibCheck false), then run.
import { fetch, type Server, type ServerWebSocket, serve, WebSocket } from 'hypersock'

const server: Server = await serve({
  hostname: '127.0.0.1',
  port: 0,
  fetch: () => 'hello from hypersock',
  websocket: {
    message(ws: ServerWebSocket, data: string | Buffer) {
      ws.send(data)
    },
  },
})
const text: string = await (await fetch(server.url)).text()
if (text !== 'hello from hypersock') throw new Error(`fetch got ${JSON.stringify(text)}`)
const ws = new WebSocket(`ws://127.0.0.1:${server.port}/`)
const echo = await new Promise<string>((resolve, reject) => {
  ws.onopen = () => ws.send('ping')
  ws.onmessage = (ev) => resolve(String(ev.data))
  ws.onerror = () => reject(new Error('WebSocket error'))
})
if (echo !== 'ping') throw new Error(`echo got ${JSON.stringify(echo)}`)
ws.close()
await server.stop()
console.log('typescript smoke: ok')

// Smoke test of an installed hypersock (ESM): a server, a fetch, a WebSocket echo.
import { fetch, serve, WebSocket } from 'hypersock'

const server = await serve({
  hostname: '127.0.0.1',
  port: 0,
  fetch: () => 'hello from hypersock',
  websocket: { message: (ws, data) => ws.send(data) },
})
const text = await (await fetch(server.url)).text()
if (text !== 'hello from hypersock') throw new Error(`fetch got ${JSON.stringify(text)}`)
const ws = new WebSocket(`ws://127.0.0.1:${server.port}/`)
const echo = await new Promise((resolve, reject) => {
  ws.onopen = () => ws.send('ping')
  ws.onmessage = (ev) => resolve(String(ev.data))
  ws.onerror = (ev) => reject(ev.error ?? new Error('WebSocket error'))
})
if (echo !== 'ping') throw new Error(`echo got ${JSON.stringify(echo)}`)
ws.close()
await server.stop()
console.log('esm smoke: ok')

// WebSocket echo with compression and backpressure, both directions.
// - Compression: `serveWebSocket({ compression: true })` and the client `WebSocket` (which offers
//   permessage-deflate by default) agree on it; repetitive JSON echoed back crosses the wire in a
//   fraction of its size (the server's `stats().bytesIn` counts wire bytes).
// - Server to client: asked for a flood, the server sends until `ws.send()` returns false (its
//   queue passed `highWaterMark`), stops, and resumes in the `drain` handler.
// - Client to server: the client uploads with `await ws.sendAsync()`, which resolves once each
//   message is written to the socket, so its queue (`bufferedAmount`) never grows without bound.
//
// Run: node examples/websocket-backpressure.mjs   (from the repository root; loopback only)
import { randomBytes } from 'node:crypto'
import { serveWebSocket, WebSocket } from 'hypersock'

const FLOOD = 200 // messages of 64 KiB from the server
const UPLOADS = 32 // messages of 256 KiB from the client
const flood = randomBytes(64 * 1024) // random bytes do not compress: the queue fills for real

/** Sends the rest of the flood until the queue is full; `drain` calls it again. */
function pump(ws) {
  if (!ws.data.flooding) return // a drain after the flood (or before it) has nothing to resume
  while (ws.data.sent < FLOOD) {
    ws.data.sent++
    if (!ws.send(flood)) {
      ws.data.pauses++
      return // over highWaterMark: wait for drain
    }
  }
  ws.data.flooding = false
  ws.send(JSON.stringify({ type: 'flood-end', pauses: ws.data.pauses }))
}

const server = await serveWebSocket({
  port: 0,
  hostname: '127.0.0.1',
  compression: true,
  highWaterMark: 256 * 1024,
  open(ws) {
    ws.data = { flooding: false, sent: 0, pauses: 0, uploaded: 0 }
  },
  message(ws, data, isBinary) {
    if (isBinary) {
      ws.data.uploaded += data.byteLength
      return
    }
    const msg = JSON.parse(String(data))
    if (msg.type === 'echo') ws.send(JSON.stringify(msg))
    else if (msg.type === 'flood') {
      ws.data.flooding = true
      pump(ws)
    } else if (msg.type === 'uploaded?') ws.send(JSON.stringify({ type: 'uploaded', bytes: ws.data.uploaded }))
  },
  drain(ws) {
    pump(ws)
  },
})
console.log(`server listening on ${server.url}`)

const ws = new WebSocket(server.url.href.replace('http:', 'ws:'))
ws.binaryType = 'nodebuffer'
await new Promise((resolve, reject) => {
  ws.onopen = resolve
  ws.onerror = (e) => reject(e.error ?? new Error('connect failed'))
})
console.log(`connected, extensions: ${ws.extensions}`)
const incoming = ws[Symbol.asyncIterator]()
const next = async () => (await incoming.next()).value

// 1. Compressed echo: 10 messages of ~100 KB of repetitive JSON.
const rows = Array.from({ length: 1000 }, (_, i) => ({ id: i, name: `user-${i}`, active: i % 2 === 0 }))
let echoed = 0
const before = server.stats().bytesIn
for (let i = 0; i < 10; i++) {
  const text = JSON.stringify({ type: 'echo', seq: i, rows })
  ws.send(text)
  const back = await next()
  if (back !== text) throw new Error('echo mismatch')
  echoed += text.length
}
const wire = server.stats().bytesIn - before
console.log(
  `echoed ${echoed} bytes of JSON; the server read ${wire} bytes off the wire (${((100 * wire) / echoed).toFixed(1)}%)`,
)

// 2. Server-side backpressure: send() returns false, drain resumes.
ws.send(JSON.stringify({ type: 'flood' }))
let floodBytes = 0
let floodMessages = 0
let end
for (;;) {
  const m = await next()
  if (typeof m === 'string') {
    end = JSON.parse(m)
    break
  }
  floodMessages++
  floodBytes += m.byteLength
}
console.log(
  `flood: received ${floodMessages} messages (${floodBytes} bytes); the server paused ${end.pauses} times for drain`,
)

// 3. Client-side backpressure: sendAsync resolves once each message is on the socket.
const chunk = randomBytes(256 * 1024)
let maxBuffered = 0
for (let i = 0; i < UPLOADS; i++) {
  await ws.sendAsync(chunk)
  maxBuffered = Math.max(maxBuffered, ws.bufferedAmount)
}
ws.send(JSON.stringify({ type: 'uploaded?' }))
const uploaded = JSON.parse(await next())
console.log(
  `upload: sent ${UPLOADS} x 256 KiB with sendAsync, server got ${uploaded.bytes} bytes, bufferedAmount peaked at ${maxBuffered}`,
)

ws.close(1000, 'bye')
await server.stop()
if (floodMessages !== FLOOD || uploaded.bytes !== UPLOADS * chunk.byteLength || wire >= echoed) {
  throw new Error('the WebSocket example did not behave as expected')
}
console.log('done: compressed echo, server drain and client sendAsync all worked')

// WebSockets over one HTTP/2 connection vs one TCP connection each, run in its own process by
// bench/scenarios/ws.mjs:
//   node ws-h2.mjs --url=wss://127.0.0.1:PORT/ --ca=FILE --http2=always|never --sockets=N --seconds=S
//     [--warm=W]
// First opens W WebSockets (100 by default), echoes one message on each and closes them, so that
// the server has run every code path once (its code pages and the HTTP/2 connection are then not
// counted per socket); prints `WARM` and waits for a line on stdin (the harness reads the server's
// RSS meanwhile). Then opens N hypersock WebSockets at once (with `http2: 'always'` they are
// streams of the client's one HTTP/2 connection), prints `OPEN <ms>`, waits for a line on stdin
// again, then keeps one 32-byte message in flight on every socket for S seconds and prints
// {"openMs","messages","seconds","rate"}.
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { parseArgs } from 'node:util'
import { Client, WebSocket } from '../../dist/index.js'

const { values } = parseArgs({
  options: {
    url: { type: 'string' },
    ca: { type: 'string' },
    http2: { type: 'string', default: 'never' },
    sockets: { type: 'string', default: '1000' },
    seconds: { type: 'string', default: '3' },
    warm: { type: 'string', default: '100' },
  },
})
const ca = readFileSync(String(values.ca), 'utf8')
const count = Number(values.sockets)
const client = new Client({ tls: { ca } })
const options = { http2: values.http2, client, tls: { ca }, compression: false, handshakeTimeout: 60_000 }

const input = createInterface({ input: process.stdin })[Symbol.asyncIterator]()

/** Opens `n` WebSockets at once. */
function open(n) {
  return Promise.all(
    Array.from(
      { length: n },
      () =>
        new Promise((resolve, reject) => {
          const ws = new WebSocket(String(values.url), [], options)
          ws.binaryType = 'nodebuffer'
          ws.onopen = () => resolve(ws)
          ws.onerror = (e) => reject(e.error ?? new Error('WebSocket failed'))
        }),
    ),
  )
}

const warm = await open(Number(values.warm))
await Promise.all(
  warm.map(
    (ws) =>
      new Promise((resolve) => {
        ws.onmessage = () => ws.close()
        ws.onclose = resolve
        ws.send('warm')
      }),
  ),
)
process.stdout.write('WARM\n')
await input.next()

const started = performance.now()
const sockets = await open(count)
const openMs = performance.now() - started
const over = sockets.every((ws) => ws.httpVersion === (values.http2 === 'always' ? '2' : '1.1'))
if (!over) throw new Error(`not every socket is on HTTP/${values.http2 === 'always' ? '2' : '1.1'}`)
process.stdout.write(`OPEN ${openMs.toFixed(1)}\n`)
await input.next()

const payload = 'x'.repeat(32)
const end = performance.now() + Number(values.seconds) * 1000
let messages = 0
const t0 = performance.now()
await Promise.all(
  sockets.map(
    (ws) =>
      new Promise((resolve) => {
        ws.onmessage = () => {
          messages++
          if (performance.now() < end) ws.send(payload)
          else resolve()
        }
        ws.send(payload)
      }),
  ),
)
const seconds = (performance.now() - t0) / 1000
for (const ws of sockets) ws.terminate()
console.log(JSON.stringify({ openMs, messages, seconds, rate: messages / seconds }))
process.exit(0)

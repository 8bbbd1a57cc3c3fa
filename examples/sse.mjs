// Server-Sent Events, both ends. The server answers /ticks with `sse()`: a streamed
// `text/event-stream` response made from an async generator of `{ event, id, data, retry }`
// objects (`data` objects go out as JSON). The first connection ends after three ticks; the
// `EventSource` client reconnects by itself after the `retry:` delay, sending `Last-Event-ID`,
// and the server resumes from there and finally sends a `done` event, on which the client closes.
//
// Run: node examples/sse.mjs   (from the repository root; loopback only)
import { EventSource, serve, sse } from 'hypersock'

const TOTAL = 6
const server = await serve({
  port: 0,
  hostname: '127.0.0.1',
  fetch(req) {
    if (req.path !== '/ticks') return { status: 404 }
    const lastId = req.headers.get('last-event-id')
    const from = lastId ? Number(lastId) + 1 : 1
    console.log(`server: /ticks connection, Last-Event-ID ${lastId ?? '(none)'}, starting at ${from}`)
    return sse(
      (async function* () {
        // Reconnect quickly when this stream ends (the default is 3 seconds).
        if (from === 1) yield { retry: 100, comment: 'welcome' }
        for (let n = from; n <= TOTAL; n++) {
          yield { event: 'tick', id: String(n), data: { n, at: new Date().toISOString() } }
          // The first connection stops after three events, as a dropped connection would.
          if (from === 1 && n === 3) return
          await new Promise((r) => setTimeout(r, 20))
        }
        yield { event: 'done', data: 'that is all' }
      })(),
    )
  },
})
console.log(`server listening on ${server.url}`)

const source = new EventSource(new URL('/ticks', server.url))
const ticks = []
let opens = 0
source.onopen = () => console.log(`client: open #${++opens}`)
source.onerror = () => console.log('client: stream lost, reconnecting')
source.addEventListener('tick', (e) => {
  const { n } = JSON.parse(e.data)
  ticks.push(n)
  console.log(`client: tick ${n} (id ${e.lastEventId})`)
})
await new Promise((resolve) => {
  source.addEventListener('done', (e) => {
    console.log(`client: done event: ${e.data}`)
    source.close()
    resolve()
  })
})

await server.stop()
if (ticks.join() !== '1,2,3,4,5,6' || opens !== 2) throw new Error(`unexpected: ticks ${ticks}, opens ${opens}`)
console.log(`done: received ticks ${ticks.join(',')} over ${opens} connections`)

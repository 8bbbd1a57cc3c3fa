// hypersock Hub fan-out: every connection joins room `bench`; `go` publishes one message to the
// room (framed once, queued in Rust), `count` and `mem` answer the load generator (ws-fanout).
import { Hub, serveWebSocket } from '../../dist/index.js'
import { announce, median } from './common.mjs'

/** Microseconds the JS thread spent in each publish call. */
const jsMicros = []
const payload = 'x'.repeat(Number(process.env.FANOUT_SIZE ?? 64))
const hub = new Hub()
const server = await serveWebSocket({
  port: 0,
  hostname: '127.0.0.1',
  hub,
  open(ws) {
    hub.join(ws, 'bench')
  },
  message(ws, data) {
    if (data === 'go') {
      const t = performance.now()
      hub.publish('bench', payload)
      jsMicros.push((performance.now() - t) * 1000)
    } else if (data === 'js') ws.send(`js ${median(jsMicros)}`)
    else if (data === 'count') ws.send(`count ${hub.roomSize('bench')}`)
    else if (data === 'mem') ws.send(`mem ${process.memoryUsage().rss}`)
  },
})
announce(server.port)

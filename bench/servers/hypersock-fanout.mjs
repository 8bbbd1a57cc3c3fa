// hypersock Hub fan-out: every connection joins room `bench`; `go` publishes one message to the
// room (framed once, queued in Rust), `count`, `mem`, `js` and `cpu` answer the load generator
// (ws-fanout). FANOUT_PING_MS turns on the built-in heartbeat (a ping per interval, in Rust).
import { Hub, serveWebSocket } from '../../dist/index.js'
import { announce, cpuMicros, median } from './common.mjs'

/** Microseconds the JS thread spent in each publish call. */
const jsMicros = []
const payload = 'x'.repeat(Number(process.env.FANOUT_SIZE ?? 64))
const hub = new Hub()
const pingMs = Number(process.env.FANOUT_PING_MS ?? 0)
const server = await serveWebSocket({
  port: 0,
  hostname: '127.0.0.1',
  hub,
  ...(pingMs > 0 ? { pingInterval: pingMs, pongTimeout: pingMs } : {}),
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
    else if (data === 'cpu') ws.send(`cpu ${cpuMicros()}`)
  },
})
announce(server.port)

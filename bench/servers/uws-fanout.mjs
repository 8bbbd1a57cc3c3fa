// uWebSockets.js fan-out through its topics: every connection subscribes to `bench` and `go`
// calls app.publish. Commands as in hypersock-fanout.mjs. FANOUT_PING_MS turns on uWebSockets'
// own heartbeat: `idleTimeout` (whole seconds, at least 8, a multiple of 4) with
// `sendPingsAutomatically`, which pings a connection idle for about that long.
import { createRequire } from 'node:module'
import { announce, cpuMicros, median } from './common.mjs'

const uws = createRequire(import.meta.url)('@trufflesuite/uws-js-unofficial')
/** Microseconds the JS thread spent in each publish call. */
const jsMicros = []
const payload = 'x'.repeat(Number(process.env.FANOUT_SIZE ?? 64))
const decoder = new TextDecoder()
let subscribers = 0
/** uWebSockets' idle timeout for a ping interval (0: none). */
function idleSeconds(ms) {
  return ms > 0 ? Math.max(8, Math.round(ms / 4000) * 4) : 0
}
const app = uws.App().ws('/*', {
  compression: uws.DISABLED,
  maxPayloadLength: 16 * 1024,
  idleTimeout: idleSeconds(Number(process.env.FANOUT_PING_MS ?? 0)),
  sendPingsAutomatically: true,
  open(ws) {
    ws.subscribe('bench')
    subscribers++
  },
  close() {
    subscribers--
  },
  message(ws, message, isBinary) {
    const text = isBinary ? '' : decoder.decode(message)
    if (text === 'go') {
      const t = performance.now()
      app.publish('bench', payload, false)
      jsMicros.push((performance.now() - t) * 1000)
    } else if (text === 'js') ws.send(`js ${median(jsMicros)}`, false)
    else if (text === 'count') ws.send(`count ${subscribers}`, false)
    else if (text === 'mem') ws.send(`mem ${process.memoryUsage().rss}`, false)
    else if (text === 'cpu') ws.send(`cpu ${cpuMicros()}`, false)
  },
})
app.listen('127.0.0.1', 0, (socket) => {
  if (!socket) throw new Error('uWS could not listen')
  announce(uws.us_socket_local_port(socket))
})

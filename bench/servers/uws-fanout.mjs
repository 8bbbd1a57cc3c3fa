// uWebSockets.js fan-out through its topics: every connection subscribes to `bench` and `go`
// calls app.publish. Commands as in hypersock-fanout.mjs.
import { createRequire } from 'node:module'
import { announce, median } from './common.mjs'

const uws = createRequire(import.meta.url)('@trufflesuite/uws-js-unofficial')
/** Microseconds the JS thread spent in each publish call. */
const jsMicros = []
const payload = 'x'.repeat(Number(process.env.FANOUT_SIZE ?? 64))
const decoder = new TextDecoder()
let subscribers = 0
const app = uws.App().ws('/*', {
  compression: uws.DISABLED,
  maxPayloadLength: 16 * 1024,
  idleTimeout: 0,
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
  },
})
app.listen('127.0.0.1', 0, (socket) => {
  if (!socket) throw new Error('uWS could not listen')
  announce(uws.us_socket_local_port(socket))
})

// `ws` fan-out: the usual loop over the subscribed clients (`ws` has no publish). Commands as in
// hypersock-fanout.mjs. FANOUT_PING_MS turns on the heartbeat `ws` documents (a ping to every
// client per interval from a timer, terminating those that did not answer the last one).
import { WebSocketServer } from 'ws'
import { announce, cpuMicros, median } from './common.mjs'

/** Microseconds the JS thread spent in each publish call. */
const jsMicros = []
const payload = 'x'.repeat(Number(process.env.FANOUT_SIZE ?? 64))
const room = new Set()
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })
const pingMs = Number(process.env.FANOUT_PING_MS ?? 0)
if (pingMs > 0) {
  setInterval(() => {
    for (const ws of room) {
      if (ws.isAlive === false) {
        ws.terminate()
        continue
      }
      ws.isAlive = false
      ws.ping()
    }
  }, pingMs)
}
wss.on('connection', (ws) => {
  room.add(ws)
  ws.isAlive = true
  ws.on('pong', () => {
    ws.isAlive = true
  })
  ws.on('close', () => room.delete(ws))
  ws.on('message', (data, isBinary) => {
    const text = isBinary ? '' : data.toString()
    if (text === 'go') {
      const t = performance.now()
      for (const client of room) client.send(payload)
      jsMicros.push((performance.now() - t) * 1000)
    } else if (text === 'js') ws.send(`js ${median(jsMicros)}`)
    else if (text === 'count') ws.send(`count ${room.size}`)
    else if (text === 'mem') ws.send(`mem ${process.memoryUsage().rss}`)
    else if (text === 'cpu') ws.send(`cpu ${cpuMicros()}`)
  })
})
wss.on('listening', () => announce(wss.address().port))

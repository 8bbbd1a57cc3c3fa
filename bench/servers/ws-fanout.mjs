// `ws` fan-out: the usual loop over the subscribed clients (`ws` has no publish). Commands as in
// hypersock-fanout.mjs.
import { WebSocketServer } from 'ws'
import { announce, median } from './common.mjs'

/** Microseconds the JS thread spent in each publish call. */
const jsMicros = []
const payload = 'x'.repeat(Number(process.env.FANOUT_SIZE ?? 64))
const room = new Set()
const wss = new WebSocketServer({ host: '127.0.0.1', port: 0, perMessageDeflate: false })
wss.on('connection', (ws) => {
  room.add(ws)
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
  })
})
wss.on('listening', () => announce(wss.address().port))

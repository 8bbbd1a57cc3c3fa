// The `ws` package as a room chat: every message is sent to every connected client (the sender
// included), the loop over clients that `ws` users write.
import { WebSocketServer } from 'ws'
import { announce } from './common.mjs'

const wss = new WebSocketServer({ port: 0, host: '127.0.0.1' })
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => {
    for (const client of wss.clients) client.send(data, { binary: isBinary })
  })
})
wss.on('listening', () => announce(wss.address().port))

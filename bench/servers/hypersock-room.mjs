// hypersock room chat: every connection joins room `chat`; every message is published to the
// room (framed once in Rust, queued on every member, the sender included).
import { Hub, serve } from '../../dist/index.js'
import { announce } from './common.mjs'

const hub = new Hub()
const server = await serve({
  port: 0,
  hostname: '127.0.0.1',
  fetch: () => ({ status: 426, body: 'WebSocket only\n' }),
  websocket: {
    hub,
    open(ws) {
      hub.join(ws, 'chat')
    },
    message(_ws, data) {
      hub.publish('chat', data)
    },
  },
})
announce(server.port)

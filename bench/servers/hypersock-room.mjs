// hypersock room chat: every connection joins room `chat`; every message is published to the
// room (framed once in Rust, queued on every member, the sender included).
// `node hypersock-room.mjs [<redis url> <channel> [streams]]` relays the room through Redis (pub/sub,
// or a stream) to the other processes on the same channel, and announces its port once the adapter
// is connected.
import { Hub, RedisAdapter, serveWebSocket } from '../../dist/index.js'
import { announce } from './common.mjs'

const [url, channel, mode] = process.argv.slice(2)
// A comma-separated list of URLs is a Redis Cluster's nodes.
const where = url?.includes(',') ? { cluster: url.split(',') } : { url }
const adapter = url ? new RedisAdapter({ ...where, channel, ...(mode === 'streams' && { mode }) }) : undefined
const ready = adapter ? new Promise((resolve) => adapter.once('ready', resolve)) : Promise.resolve()
const hub = new Hub(adapter ? { adapter } : {})
const server = await serveWebSocket({
  port: 0,
  hostname: '127.0.0.1',
  hub,
  open(ws) {
    hub.join(ws, 'chat')
  },
  message(_ws, data) {
    hub.publish('chat', data)
  },
})
await ready
announce(server.port)

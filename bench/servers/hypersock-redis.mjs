// hypersock Hub for the cross-process latency run: `node hypersock-redis.mjs <redis url | none>
// <channel>`. Every connection joins room `bench`; every message it sends is published to the
// room, through Redis to the other processes on the same channel (or, with `none`, on this process
// only). Announces its port once the adapter is connected.
import { Hub, RedisAdapter, serve } from '../../dist/index.js'
import { announce } from './common.mjs'

const [url, channel] = process.argv.slice(2)
const adapter = url && url !== 'none' ? new RedisAdapter({ url, channel }) : undefined
const ready = adapter ? new Promise((resolve) => adapter.once('ready', resolve)) : Promise.resolve()
const hub = new Hub(adapter ? { adapter } : {})
const server = await serve({
  port: 0,
  hostname: '127.0.0.1',
  fetch: () => ({ status: 426, body: 'WebSocket only\n' }),
  websocket: {
    hub,
    open(ws) {
      hub.join(ws, 'bench')
    },
    message(_ws, data) {
      hub.publish('bench', data)
    },
  },
})
await ready
announce(server.port)

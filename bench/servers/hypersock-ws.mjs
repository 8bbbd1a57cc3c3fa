// hypersock serve({ websocket }): echoes every message back as it came (text or binary).
// `--deflate` enables permessage-deflate (threshold 1024 bytes, as `ws`).
import { serveWebSocket } from '../../dist/index.js'
import { announce } from './common.mjs'

const server = await serveWebSocket({
  port: 0,
  hostname: '127.0.0.1',
  compression: process.argv.includes('--deflate') ? { threshold: 1024 } : false,
  message(ws, data) {
    // Like `ws`, drop echoes of messages that arrive while the connection is closing.
    if (ws.readyState !== 1) return
    try {
      ws.send(data)
    } catch {}
  },
})
announce(server.port)

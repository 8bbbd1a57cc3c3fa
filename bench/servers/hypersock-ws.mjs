// hypersock serve({ websocket }): echoes every message back as it came (text or binary).
import { serve } from '../../dist/index.js'
import { announce } from './common.mjs'

const server = await serve({
  port: 0,
  hostname: '127.0.0.1',
  fetch: () => ({ status: 426, body: 'WebSocket only\n' }),
  websocket: {
    message(ws, data) {
      // Like `ws`, drop echoes of messages that arrive while the connection is closing.
      if (ws.readyState !== 1) return
      try {
        ws.send(data)
      } catch {}
    },
  },
})
announce(server.port)

// uWebSockets.js (npm @trufflesuite/uws-js-unofficial) as a room chat: every connection
// subscribes to topic `chat`; every message is published to it (`app.publish`: the sender too).
import { createRequire } from 'node:module'
import { announce } from './common.mjs'

const uWS = createRequire(import.meta.url)('@trufflesuite/uws-js-unofficial')

const app = uWS.App()
app
  .ws('/*', {
    compression: uWS.DISABLED,
    maxPayloadLength: 1024 * 1024,
    maxBackpressure: 64 * 1024 * 1024,
    idleTimeout: 0,
    open: (ws) => {
      ws.subscribe('chat')
    },
    message: (_ws, message, isBinary) => {
      app.publish('chat', message, isBinary)
    },
  })
  .listen('127.0.0.1', 0, (token) => {
    if (!token) throw new Error('uWS could not listen')
    announce(uWS.us_socket_local_port(token))
  })

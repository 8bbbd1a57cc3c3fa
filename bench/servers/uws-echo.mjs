// uWebSockets.js (npm @trufflesuite/uws-js-unofficial): echoes every message back as it came.
// `--deflate` enables its shared permessage-deflate compressor.
import { createRequire } from 'node:module'
import { announce } from './common.mjs'

const uWS = createRequire(import.meta.url)('@trufflesuite/uws-js-unofficial')
const deflate = process.argv.includes('--deflate')

uWS
  .App()
  .ws('/*', {
    compression: deflate ? uWS.SHARED_COMPRESSOR : uWS.DISABLED,
    maxPayloadLength: 16 * 1024 * 1024,
    maxBackpressure: 64 * 1024 * 1024,
    idleTimeout: 0,
    message: (ws, message, isBinary) => {
      ws.send(message, isBinary, deflate)
    },
  })
  .listen('127.0.0.1', 0, (token) => {
    if (!token) throw new Error('uWS could not listen')
    announce(uWS.us_socket_local_port(token))
  })

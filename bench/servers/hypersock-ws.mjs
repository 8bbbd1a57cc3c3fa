// hypersock serve({ websocket }): echoes every message back as it came (text or binary).
// `--deflate` enables permessage-deflate (threshold 1024 bytes, as `ws`); `--cert=FILE` serves
// wss:// (HTTP/1.1 and HTTP/2 by ALPN) with the certificate JSON in FILE ({ cert, key }).
// `--read-buffer=N` and `--workers=N` apply `configure({ readBufferSize, workerThreads })` first.
import { readFileSync } from 'node:fs'
import { configure, serveWebSocket } from '../../dist/index.js'
import { announce } from './common.mjs'

const arg = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3)
if (arg('read-buffer')) configure({ readBufferSize: Number(arg('read-buffer')) })
if (arg('workers')) configure({ workerThreads: Number(arg('workers')) })
const certFile = process.argv.find((a) => a.startsWith('--cert='))?.slice('--cert='.length)
const server = await serveWebSocket({
  port: 0,
  hostname: '127.0.0.1',
  // With TLS, room for a client's 1,000 WebSockets on one HTTP/2 connection.
  ...(certFile ? { tls: JSON.parse(readFileSync(certFile, 'utf8')), maxConcurrentStreams: 4096 } : {}),
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

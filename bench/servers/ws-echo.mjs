// The `ws` package's WebSocketServer: echoes every message back as it came (text or binary).
// `--deflate` enables its permessage-deflate (default threshold 1024 bytes).
import { WebSocketServer } from 'ws'
import { announce } from './common.mjs'

const wss = new WebSocketServer({ port: 0, host: '127.0.0.1', perMessageDeflate: process.argv.includes('--deflate') })
wss.on('connection', (ws) => {
  ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }))
})
wss.on('listening', () => announce(wss.address().port))

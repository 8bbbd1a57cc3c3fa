// Autobahn|Testsuite target: a hypersock echo server (permessage-deflate enabled) driven by
// `kosoku -m fuzzingclient`. Prints its port on stdout, then serves until killed.
import { serveWebSocket } from '../../dist/index.js'

const server = await serveWebSocket({
  port: Number(process.env.PORT ?? 0),
  maxMessageSize: 64 * 1024 * 1024,
  compression: { threshold: 0 },
  message(ws, data) {
    ws.send(data)
  },
})
console.log(server.port)
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.stop({ graceful: false }).then(() => process.exit(0)))

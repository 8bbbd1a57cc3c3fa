// Autobahn|Testsuite target: a hypersock echo server driven by `kosoku -m fuzzingclient`.
// Prints its port on stdout, then serves until killed.
//   node echo-server.mjs default  what a user gets from `compression: true` and nothing else
//   node echo-server.mjs tuned    every message compressed (threshold 0) and a 64 MiB message limit
import { serveWebSocket } from '../../dist/index.js'

const mode = process.argv[2] ?? 'tuned'
if (mode !== 'default' && mode !== 'tuned') throw new Error(`mode must be 'default' or 'tuned', not '${mode}'`)
const server = await serveWebSocket({
  port: Number(process.env.PORT ?? 0),
  ...(mode === 'tuned' ? { maxMessageSize: 64 * 1024 * 1024, compression: { threshold: 0 } } : { compression: true }),
  message(ws, data) {
    ws.send(data)
  },
})
console.log(server.port)
for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => server.stop({ graceful: false }).then(() => process.exit(0)))

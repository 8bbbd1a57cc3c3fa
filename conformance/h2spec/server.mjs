// A hypersock server for h2spec: prints its port, serves until stdin closes.
import { serve } from 'hypersock'

const server = await serve({
  port: 0,
  // HTTP/2 only: on a shared HTTP/1.1 port an invalid preface reads as an HTTP/1.1 request.
  http2: 'only',
  async fetch(req) {
    // Read the body so that flow-control cases see DATA frames consumed.
    await req.arrayBuffer()
    return 'hello h2spec'
  },
  error: () => {},
})
console.log(server.port)
process.stdin.resume()
process.stdin.on('end', () => server.stop({ graceful: false }).then(() => process.exit(0)))

// A hypersock server for h2spec: prints its port, serves until stdin closes.
// H2SPEC_TLS=1 serves HTTPS (HTTP/2 chosen by ALPN) with a certificate made at start.
import { serve } from 'hypersock'
import { generateCertificate } from 'hypersock/testing'

const tls = process.env.H2SPEC_TLS === '1' ? generateCertificate({ commonName: 'localhost' }) : undefined
const server = await serve({
  port: 0,
  // Cleartext: HTTP/2 only, since on a shared HTTP/1.1 port an invalid preface reads as an
  // HTTP/1.1 request. With TLS, ALPN picks the protocol per connection.
  http2: tls ? true : 'only',
  tls,
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

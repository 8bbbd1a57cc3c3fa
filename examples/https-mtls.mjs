// HTTPS with mutual TLS. Certificates are made on the spot with `generateCertificate` from
// 'hypersock/testing': one CA, a server certificate for 127.0.0.1 and a client certificate, both
// signed by it. The server requires a client certificate that chains to the CA
// (`clientCa` + `requireClientCert`) and tells each request who the client is (`req.tls`); a
// client with its certificate gets in, one without is refused during the TLS handshake.
//
// Run: node examples/https-mtls.mjs   (from the repository root; loopback only)
import { Client, serve } from 'hypersock'
import { generateCertificate } from 'hypersock/testing'

const ca = generateCertificate({ isCa: true, commonName: 'example CA' })
const serverCert = generateCertificate({ ca, commonName: '127.0.0.1', subjectAltNames: ['127.0.0.1', 'localhost'] })
const clientCert = generateCertificate({ ca, commonName: 'alice', subjectAltNames: ['alice.example'] })

const server = await serve({
  port: 0,
  hostname: '127.0.0.1',
  tls: { cert: serverCert.cert, key: serverCert.key, clientCa: ca.cert, requireClientCert: true },
  fetch(req) {
    const who = req.tls?.chain[0]?.subjectCN ?? 'nobody'
    return `hello ${who}, over ${req.tls?.protocol} and HTTP/${req.httpVersion}`
  },
})
console.log(`server listening on ${server.url}`)

// With its certificate: the client trusts the CA (instead of the public roots) and presents its own.
const alice = new Client({ tls: { ca: ca.cert, cert: clientCert.cert, key: clientCert.key } })
const res = await alice.fetch(server.url)
console.log(`with a client certificate: ${res.status} "${await res.text()}"`)
console.log(`server certificate: CN=${res.peerCertificate?.subjectCN}, issued by ${res.peerCertificate?.issuer}`)

// Without one: refused in the handshake, reported with a stable error code.
const stranger = new Client({ tls: { ca: ca.cert } })
let refused
try {
  await (await stranger.fetch(server.url)).text()
} catch (err) {
  refused = err
  console.log(`without a client certificate: refused (${err.name}, ${err.code})`)
}

console.log(`server counted ${server.stats().tlsFailures} failed TLS handshake(s)`)
await server.stop()
if (res.status !== 200 || !refused) throw new Error('mutual TLS did not behave as expected')
console.log('done: mutual TLS accepted alice and refused the stranger')

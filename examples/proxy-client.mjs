// A client going through an HTTP proxy. The example writes its own tiny CONNECT proxy with
// node:http (it checks `Proxy-Authorization` and pipes bytes both ways) and starts an HTTPS
// server with hypersock. A `Client` with `proxy: 'http://user:pass@host:port'` opens a tunnel
// with CONNECT (the credentials go as `Proxy-Authorization: Basic`) and runs TLS end to end with
// the origin inside it; the proxy only sees the target's host and port. A wrong password is
// refused by the proxy with 407, which the client reports as ERR_PROXY_AUTH_REQUIRED.
//
// Run: node examples/proxy-client.mjs   (from the repository root; loopback only)
import { once } from 'node:events'
import http from 'node:http'
import net from 'node:net'
import { Client, serve } from 'hypersock'
import { generateCertificate } from 'hypersock/testing'

// The origin: HTTPS with a certificate from a throwaway CA.
const ca = generateCertificate({ isCa: true, commonName: 'example CA' })
const origin = await serve({
  port: 0,
  hostname: '127.0.0.1',
  tls: generateCertificate({ ca, subjectAltNames: ['127.0.0.1'] }),
  fetch: (req) => `secret data for ${req.path} (via ${req.httpVersion === '2' ? 'HTTP/2' : 'HTTP/1.1'})`,
})
console.log(`origin listening on ${origin.url}`)

// The proxy: answers CONNECT only, with Basic credentials user:pass.
const expected = `Basic ${Buffer.from('user:pass').toString('base64')}`
const tunnels = []
const sockets = new Set()
const proxy = http.createServer((_req, res) => res.writeHead(405).end('CONNECT only'))
proxy.on('connect', (req, clientSocket, head) => {
  clientSocket.on('error', () => {})
  if (req.headers['proxy-authorization'] !== expected) {
    console.log(`proxy: refused CONNECT ${req.url} (bad credentials)`)
    clientSocket.end('HTTP/1.1 407 Proxy Authentication Required\r\nProxy-Authenticate: Basic\r\n\r\n')
    return
  }
  const { hostname: host, port } = new URL(`http://${req.url}`)
  console.log(`proxy: CONNECT ${req.url} accepted, tunnelling`)
  tunnels.push(req.url)
  const upstream = net.connect(Number(port), host, () => {
    clientSocket.write('HTTP/1.1 200 Connection Established\r\n\r\n')
    upstream.write(head)
    upstream.pipe(clientSocket)
    clientSocket.pipe(upstream)
  })
  upstream.on('error', () => clientSocket.destroy())
  for (const s of [clientSocket, upstream]) {
    sockets.add(s)
    s.on('close', () => sockets.delete(s))
  }
  clientSocket.on('close', () => upstream.destroy())
})
proxy.listen(0, '127.0.0.1')
await once(proxy, 'listening')
const proxyUrl = `http://user:pass@127.0.0.1:${proxy.address().port}`
console.log(`proxy listening on 127.0.0.1:${proxy.address().port}`)

const client = new Client({ proxy: proxyUrl, tls: { ca: ca.cert } })
const res = await client.fetch(new URL('/report', origin.url))
console.log(`through the proxy: ${res.status} "${await res.text()}", TLS ${res.tls?.protocol} with the origin`)

// The same proxy with a wrong password.
const wrong = new Client({ proxy: proxyUrl.replace(':pass@', ':nope@'), tls: { ca: ca.cert } })
let refused
try {
  await wrong.fetch(new URL('/report', origin.url))
} catch (err) {
  refused = err
  console.log(`wrong proxy password: ${err.name} ${err.code}`)
}

for (const s of sockets) s.destroy()
proxy.close()
await origin.stop({ graceful: false })
if (res.status !== 200 || tunnels.length !== 1 || refused?.code !== 'ERR_PROXY_AUTH_REQUIRED') {
  throw new Error('the proxy example did not behave as expected')
}
console.log('done: one request tunnelled through CONNECT, one refused with 407')

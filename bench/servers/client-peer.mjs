// Peer of the client benchmarks: `node client-peer.mjs --mode=http|https|h2 [--cert=FILE]`.
// Answers `/` with hello world and `/100mb` with a 100 MiB body (one preallocated buffer, written
// with backpressure). https and h2 (HTTP/2 over TLS, ALPN) use the certificate JSON in --cert.
import { readFileSync } from 'node:fs'
import http from 'node:http'
import http2 from 'node:http2'
import https from 'node:https'
import { parseArgs } from 'node:util'
import { announce, HELLO } from './common.mjs'

const { values } = parseArgs({ options: { mode: { type: 'string', default: 'http' }, cert: { type: 'string' } } })
const BIG = 100 * 1024 * 1024
const CHUNK = Buffer.alloc(1024 * 1024, 120)

function handler(req, res) {
  if (req.url === '/100mb') {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(BIG) })
    let sent = 0
    const pump = () => {
      while (sent < BIG) {
        sent += CHUNK.byteLength
        if (!res.write(CHUNK)) return void res.once('drain', pump)
      }
      res.end()
    }
    pump()
    return
  }
  res.writeHead(200, { 'content-type': 'text/plain', 'content-length': String(HELLO.length) })
  res.end(HELLO)
}

const tls = values.cert ? JSON.parse(readFileSync(values.cert, 'utf8')) : null
const server =
  values.mode === 'h2'
    ? http2.createSecureServer(
        { cert: tls.cert, key: tls.key, allowHTTP1: true, peerMaxConcurrentStreams: 1000 },
        handler,
      )
    : values.mode === 'https'
      ? https.createServer({ cert: tls.cert, key: tls.key }, handler)
      : http.createServer(handler)
server.keepAliveTimeout = 60_000
server.listen(0, '127.0.0.1', () => announce(server.address().port))

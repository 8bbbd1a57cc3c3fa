// node:http: HTTP hello world (GET) and JSON echo (POST), the baseline.
import { createServer } from 'node:http'
import { announce, HELLO } from './common.mjs'

const headers = { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(HELLO) }
const server = createServer((req, res) => {
  if (req.method !== 'POST') {
    res.writeHead(200, headers)
    res.end(HELLO)
    return
  }
  const chunks = []
  req.on('data', (c) => chunks.push(c))
  req.on('end', () => {
    const body = JSON.stringify(JSON.parse(Buffer.concat(chunks).toString()))
    res.writeHead(200, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(body) })
    res.end(body)
  })
})
server.listen(0, '127.0.0.1', () => announce(server.address().port))

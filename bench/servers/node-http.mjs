// node:http: HTTP hello world, the baseline.
import { createServer } from 'node:http'
import { announce, HELLO } from './common.mjs'

const headers = { 'content-type': 'text/plain', 'content-length': Buffer.byteLength(HELLO) }
const server = createServer((_req, res) => {
  res.writeHead(200, headers)
  res.end(HELLO)
})
server.listen(0, '127.0.0.1', () => announce(server.address().port))

// node:http2 (h2c): HTTP/2 hello world, the baseline for h2load.
import { createServer } from 'node:http2'
import { announce, HELLO } from './common.mjs'

const server = createServer((_req, res) => {
  res.writeHead(200, { 'content-type': 'text/plain' })
  res.end(HELLO)
})
server.listen(0, '127.0.0.1', () => announce(server.address().port))

// hypersock serve(): HTTP hello world (GET) and JSON echo (POST), HTTP/1.1 and h2c.
import { serve } from '../../dist/index.js'
import { announce, HELLO } from './common.mjs'

const json = { 'content-type': 'application/json' }
const server = await serve({
  port: 0,
  hostname: '127.0.0.1',
  async fetch(req) {
    if (req.method === 'POST') return { headers: json, body: JSON.stringify(await req.json()) }
    return HELLO
  },
})
announce(server.port)

// hypersock serve(): HTTP hello world (GET) and JSON echo (POST), HTTP/1.1 and h2c.
// The first argument picks how hello world is answered:
//   string   (default) the handler returns a string
//   response the handler returns hypersock's `new Response(HELLO)`
//   static   a route whose value is the text: answered by the engine, no JS
//   param    a route `/users/:id` whose handler reads `req.params.id`
//   files    `/files/*` served from the directory given as the second argument
import { dir, Response, serve } from '../../dist/index.js'
import { announce, HELLO } from './common.mjs'

const mode = process.argv[2] ?? 'string'
const json = { 'content-type': 'application/json' }
const options = {
  port: 0,
  hostname: '127.0.0.1',
  async fetch(req) {
    if (req.method === 'POST') return { headers: json, body: JSON.stringify(await req.json()) }
    return mode === 'response' ? new Response(HELLO) : HELLO
  },
}
if (mode === 'static') options.routes = { '/': HELLO }
if (mode === 'param') options.routes = { '/users/:id': (req) => `user ${req.params.id}` }
if (mode === 'files') options.routes = { '/files/*': dir(process.argv[3]) }
const server = await serve(options)
announce(server.port)

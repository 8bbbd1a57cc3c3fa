// Taking over a connection for a protocol of your own (HTTP Upgrade). The server answers a request
// carrying `Upgrade: x-shout` with `{ headers, upgrade(socket) }`: hypersock sends the 101 and
// hands over the raw connection as a Node Duplex, on which the example speaks a line protocol
// (every line comes back upper-cased; `bye` ends it). Plain requests to the same port get normal
// HTTP answers. The client is node:http's, using its `upgrade` event.
//
// Run: node examples/upgrade-hijack.mjs   (from the repository root; loopback only)
import { once } from 'node:events'
import http from 'node:http'
import { createInterface } from 'node:readline'
import { serve } from 'hypersock'

const server = await serve({
  port: 0,
  hostname: '127.0.0.1',
  fetch(req) {
    if (req.headers.get('upgrade')?.toLowerCase() !== 'x-shout') {
      return { status: 426, headers: { upgrade: 'x-shout' }, body: 'this endpoint speaks x-shout only\n' }
    }
    return {
      headers: { upgrade: 'x-shout', connection: 'Upgrade' },
      upgrade(socket) {
        console.log('server: connection taken over for x-shout')
        socket.write('WELCOME TO X-SHOUT\n')
        createInterface({ input: socket }).on('line', (line) => {
          if (line === 'bye') socket.end('BYE!\n')
          else socket.write(`${line.toUpperCase()}\n`)
        })
        socket.on('error', () => {})
      },
    }
  },
})
console.log(`server listening on ${server.url}`)

// A plain request: the endpoint says what it wants.
const plain = await fetch(server.url)
console.log(`plain GET: ${plain.status} ${(await plain.text()).trim()}`)

// The upgrade.
const req = http.request(server.url, { headers: { connection: 'Upgrade', upgrade: 'x-shout' } })
req.end()
const [res, socket, head] = await once(req, 'upgrade')
// Bytes that came in the same read as the 101 (here, the welcome line) are handed over in `head`.
if (head.length > 0) socket.unshift(head)
console.log(`client: ${res.statusCode} ${res.statusMessage}, upgrade: ${res.headers.upgrade}`)
const replies = []
const lines = createInterface({ input: socket })
lines.on('line', (line) => {
  replies.push(line)
  console.log(`client got: ${line}`)
})
for (const line of ['hello there', 'is anybody listening?', 'bye']) socket.write(`${line}\n`)
await once(socket, 'end')
socket.destroy()

await server.stop()
const want = ['WELCOME TO X-SHOUT', 'HELLO THERE', 'IS ANYBODY LISTENING?', 'BYE!']
if (res.statusCode !== 101 || replies.join('|') !== want.join('|')) throw new Error(`unexpected replies: ${replies}`)
console.log('done: the connection was upgraded and spoke x-shout')

// Replays Autobahn|Testsuite over HTTP/2 streams (RFC 8441). The fuzzing client speaks only
// HTTP/1.1, so this bridge takes its connections on a local port, answers each opening handshake
// itself, and carries the connection's bytes, unchanged, over an extended CONNECT stream of one
// shared HTTP/2 (h2c) connection to the server under test:
//   node h2-bridge.mjs SERVER_PORT   prints the bridge's port on stdout, then serves until killed
// Every frame the runner sends reaches the server as it was, and the server's frames and closes
// come back as they were: a stream that ends (END_STREAM) ends the TCP connection, a reset
// stream drops it.
import { createHash } from 'node:crypto'
import http2 from 'node:http2'
import net from 'node:net'

const serverPort = Number(process.argv[2])
if (!serverPort) throw new Error('usage: node h2-bridge.mjs SERVER_PORT')
const session = http2.connect(`http://127.0.0.1:${serverPort}`)
session.on('error', (e) => {
  console.error(`h2-bridge: session failed: ${e.message}`)
  process.exit(1)
})
await new Promise((resolve) => session.once('remoteSettings', resolve))
if (!session.remoteSettings.enableConnectProtocol) throw new Error('the server does not take extended CONNECT')

const GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11'

const bridge = net.createServer((socket) => {
  socket.on('error', () => {})
  let head = Buffer.alloc(0)
  const onData = (chunk) => {
    head = Buffer.concat([head, chunk])
    const end = head.indexOf('\r\n\r\n')
    if (end < 0) return
    socket.off('data', onData)
    socket.pause()
    open(socket, head.subarray(0, end).toString('latin1'), head.subarray(end + 4))
  }
  socket.on('data', onData)
})

function open(socket, head, rest) {
  const [requestLine, ...lines] = head.split('\r\n')
  const path = requestLine.split(' ')[1] ?? '/'
  const headers = {}
  for (const line of lines) {
    const i = line.indexOf(':')
    if (i > 0) headers[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim()
  }
  const forward = {}
  for (const name of ['sec-websocket-protocol', 'sec-websocket-extensions', 'origin']) {
    if (headers[name] !== undefined) forward[name] = headers[name]
  }
  const stream = session.request(
    {
      ':method': 'CONNECT',
      ':protocol': 'websocket',
      ':scheme': 'http',
      ':path': path,
      ':authority': headers.host ?? `127.0.0.1:${serverPort}`,
      'sec-websocket-version': headers['sec-websocket-version'] ?? '13',
      ...forward,
    },
    { endStream: false },
  )
  stream.on('error', () => socket.destroy())
  stream.once('response', (res) => {
    const status = Number(res[':status'])
    if (status !== 200) {
      socket.end(`HTTP/1.1 ${status} Refused\r\ncontent-length: 0\r\n\r\n`)
      stream.close(http2.constants.NGHTTP2_CANCEL)
      return
    }
    const accept = createHash('sha1')
      .update(`${headers['sec-websocket-key'] ?? ''}${GUID}`)
      .digest('base64')
    const out = ['HTTP/1.1 101 Switching Protocols', 'Upgrade: websocket', 'Connection: Upgrade']
    out.push(`Sec-WebSocket-Accept: ${accept}`)
    for (const name of ['sec-websocket-protocol', 'sec-websocket-extensions']) {
      if (res[name] !== undefined) out.push(`${name}: ${res[name]}`)
    }
    socket.write(`${out.join('\r\n')}\r\n\r\n`)
    if (rest.length > 0) stream.write(rest)
    socket.pipe(stream)
    stream.pipe(socket)
    socket.resume()
    // The runner closed or dropped its side: reset the stream unless it already ended cleanly.
    socket.on('close', () => {
      if (!stream.closed) stream.close(http2.constants.NGHTTP2_CANCEL)
    })
    // A reset stream drops the connection instead of ending it.
    stream.on('close', () => {
      if (stream.rstCode && stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) socket.destroy()
    })
  })
}

bridge.listen(0, '127.0.0.1', () => console.log(bridge.address().port))
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    session.destroy()
    process.exit(0)
  })
}

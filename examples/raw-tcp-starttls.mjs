// Raw TCP with a STARTTLS upgrade, using `connect()`: hypersock's own TCP and rustls for
// protocols of your own. The example runs a small line server (node:net + node:tls) that greets in
// plain text, answers `STARTTLS` with `220 GO` and then switches the same connection to TLS,
// with a certificate from `generateCertificate`. The client reads the greeting, asks for
// STARTTLS, upgrades its socket in place with `socket.startTls({ ca })` (certificate checked
// against the CA and the host name) and goes on talking, now encrypted.
//
// Run: node examples/raw-tcp-starttls.mjs   (from the repository root; loopback only)
import { once } from 'node:events'
import net from 'node:net'
import { createInterface } from 'node:readline'
import tls from 'node:tls'
import { connect } from 'hypersock'
import { generateCertificate } from 'hypersock/testing'

const ca = generateCertificate({ isCa: true, commonName: 'example CA' })
const cert = generateCertificate({ ca, commonName: 'mail.example', subjectAltNames: ['127.0.0.1'] })

// The server: a STARTTLS-style line protocol.
const server = net.createServer((plain) => {
  plain.on('error', () => {})
  plain.write('220 hello, say STARTTLS\r\n')
  let buffered = ''
  const onData = (d) => {
    buffered += d.toString('latin1')
    if (!buffered.includes('\r\n')) return
    plain.off('data', onData)
    if (buffered !== 'STARTTLS\r\n') return plain.end('500 STARTTLS first\r\n')
    plain.write('220 GO\r\n', () => {
      const secure = new tls.TLSSocket(plain, { isServer: true, cert: cert.cert, key: cert.key })
      secure.on('error', () => {})
      createInterface({ input: secure }).on('line', (line) => {
        if (line === 'QUIT') secure.end('221 bye\r\n')
        else secure.write(`250 secure echo: ${line}\r\n`)
      })
    })
  }
  plain.on('data', onData)
})
server.listen(0, '127.0.0.1')
await once(server, 'listening')
const { port } = server.address()
console.log(`line server listening on 127.0.0.1:${port}`)

// The client.
const socket = await connect({ hostname: '127.0.0.1', port, timeout: 5_000 })
console.log(`connected from ${socket.localAddress}:${socket.localPort} to ${socket.remoteAddress}:${socket.remotePort}`)

/** Reads one CRLF-terminated line, leaving the rest in the socket. */
let pending = ''
async function readLine() {
  while (!pending.includes('\r\n')) {
    const chunk = socket.read()
    if (chunk === null) {
      await Promise.race([once(socket, 'readable'), once(socket, 'end').then(() => Promise.reject(new Error('ended')))])
      continue
    }
    pending += chunk.toString()
  }
  const i = pending.indexOf('\r\n')
  const line = pending.slice(0, i)
  pending = pending.slice(i + 2)
  console.log(`S: ${line}`)
  return line
}
const send = (line) => {
  console.log(`C: ${line}`)
  socket.write(`${line}\r\n`)
}

await readLine()
send('STARTTLS')
if ((await readLine()) !== '220 GO') throw new Error('no STARTTLS')
const details = await socket.startTls({ ca: ca.cert })
console.log(
  `TLS is on: ${details.protocol}, ${details.cipher}, server certificate CN=${socket.tls?.chain[0]?.subjectCN}`,
)
send('MAIL FROM:<alice@example>')
const echoed = await readLine()
send('QUIT')
const bye = await readLine()
socket.end()
socket.resume() // read on to the server's end of the stream, so the socket can close
await once(socket, 'close')
server.close()

if (echoed !== '250 secure echo: MAIL FROM:<alice@example>' || bye !== '221 bye') throw new Error('unexpected replies')
console.log('done: plain greeting, STARTTLS upgrade in place, encrypted exchange')

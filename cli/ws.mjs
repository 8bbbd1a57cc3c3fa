// `hypersock ws URL`: a WebSocket client on the terminal (wscat-like) or in a pipe.
import { createInterface } from 'node:readline'
import { WebSocket } from '../dist/index.js'
import { EXIT, integer, palette, parse, UsageError } from './args.mjs'

export const HELP = `usage: hypersock ws URL [options]

On a terminal: type a line to send it as a text message; incoming messages are printed as they
come. Commands: /ping [data], /close [code [reason]], /quit.
Piped: each line of stdin is sent as a text message, each message received is written to stdout
on a line of its own (binary ones as base64); at the end of stdin the replies still on their way
are awaited for --wait ms (or until the server closes), then the socket is closed with 1000.

options:
  -s, --subprotocol NAME      offer this subprotocol (repeatable)
  -H, --header "Name: value"  a handshake header (repeatable)
  -c, --compress              offer permessage-deflate
  -w, --wait MS               piped: time to wait for replies after the end of input (default 1000)
  -k, --insecure              do not verify the server certificate
  -h, --help                  this help

The close code and reason are printed to stderr. Exit codes: 0 after a close handshake (whatever
its code), 2 usage, 3 a failed connection or one that dropped without a close (1006).`

const OPTIONS = {
  subprotocol: { type: 'string', short: 's', multiple: true },
  header: { type: 'string', short: 'H', multiple: true },
  compress: { type: 'boolean', short: 'c' },
  wait: { type: 'string', short: 'w' },
  insecure: { type: 'boolean', short: 'k' },
  help: { type: 'boolean', short: 'h' },
}

/** Runs the client until the socket closes; returns the exit code. */
export async function ws(argv, io) {
  const { values, positionals } = parse(argv, OPTIONS)
  if (values.help) {
    io.out.write(`${HELP}\n`)
    return EXIT.OK
  }
  const [url] = positionals
  if (!url || positionals.length > 1) throw new UsageError('one URL is needed')
  const headers = {}
  for (const line of values.header ?? []) {
    const at = line.indexOf(':')
    if (at <= 0) throw new UsageError(`a header is "Name: value", not ${JSON.stringify(line)}`)
    headers[line.slice(0, at).trim()] = line.slice(at + 1).trim()
  }
  const tty = Boolean(io.in.isTTY)
  const wait = integer('wait', values.wait ?? '1000')
  const c = palette(io.out)
  const e = palette(io.err)
  let socket
  try {
    socket = new WebSocket(url, values.subprotocol ?? [], {
      headers,
      compression: Boolean(values.compress),
      ...(values.insecure ? { tls: { rejectUnauthorized: false } } : {}),
    })
  } catch (err) {
    throw new UsageError(err.message)
  }
  socket.binaryType = 'nodebuffer'
  let failure = null
  const closed = new Promise((resolve) => {
    socket.addEventListener('error', (ev) => {
      failure = ev.error ?? new Error(ev.message)
    })
    socket.addEventListener('close', (ev) => resolve(ev))
  })
  const opened = await new Promise((resolve) => {
    socket.addEventListener('open', () => resolve(true), { once: true })
    socket.addEventListener('close', () => resolve(false), { once: true })
  })
  if (!opened) {
    const code = failure?.code ? `${failure.code}: ` : ''
    io.err.write(`hypersock: error ${code}${failure?.message ?? 'the connection failed'}\n`)
    return EXIT.NETWORK
  }
  if (tty) {
    const proto = socket.protocol ? ` (${socket.protocol})` : ''
    const ext = socket.extensions ? ` [${socket.extensions}]` : ''
    io.err.write(e.dim(`connected to ${url}${proto}${ext}; /ping, /close [code [reason]], /quit\n`))
  }
  socket.addEventListener('message', (ev) => {
    const data = ev.data
    if (tty) {
      const text = typeof data === 'string' ? data : `<binary ${data.length} bytes> ${data.toString('base64')}`
      io.out.write(`${c.cyan('<')} ${text}\n`)
    } else {
      io.out.write(`${typeof data === 'string' ? data : data.toString('base64')}\n`)
    }
  })
  socket.addEventListener('pong', (ev) => {
    if (tty) io.out.write(c.dim(`< pong ${ev.data.toString()}\n`))
  })
  const lines = createInterface({ input: io.in, terminal: false })
  let sending = Promise.resolve()
  lines.on('line', (line) => {
    if (socket.readyState !== WebSocket.OPEN) return
    if (tty && line.startsWith('/')) {
      const [cmd, ...rest] = line.slice(1).split(' ')
      if (cmd === 'ping') socket.ping(rest.join(' '))
      else if (cmd === 'close') {
        const code = rest[0] ? Number(rest[0]) : 1000
        try {
          socket.close(code, rest.slice(1).join(' '))
        } catch (err) {
          io.err.write(`${err.message}\n`)
        }
      } else if (cmd === 'quit') socket.close(1000)
      else io.err.write(`unknown command /${cmd}\n`)
      return
    }
    sending = socket.sendAsync(line).catch(() => {})
  })
  lines.on('close', () => {
    // End of stdin: once what was sent is written, give the replies time to arrive (a close now
    // would go out before them: the server answers a close frame at once), then close.
    sending.then(() => {
      const timer = setTimeout(
        () => {
          if (socket.readyState === WebSocket.OPEN) socket.close(1000)
        },
        tty ? 0 : wait,
      )
      socket.addEventListener('close', () => clearTimeout(timer))
    })
  })
  const ev = await closed
  lines.close()
  io.err.write(`${e.dim(`closed ${ev.code}${ev.reason ? ` ${ev.reason}` : ''}`)}\n`)
  if (failure && ev.code === 1006) {
    io.err.write(`hypersock: error ${failure.code ? `${failure.code}: ` : ''}${failure.message}\n`)
  }
  return ev.code === 1006 ? EXIT.NETWORK : EXIT.OK
}

#!/usr/bin/env node
// The `hypersock` command: HTTP requests (HTTPie-like), a WebSocket client (wscat-like) and a
// static file server, built on the package's public API.
import { readFileSync } from 'node:fs'
import { EXIT, UsageError } from './args.mjs'
import { METHODS, request } from './http.mjs'
import { serveDir } from './serve.mjs'
import { ws } from './ws.mjs'

const HELP = `usage: hypersock <command> [arguments] [options]

commands:
  get|post|put|patch|delete|head|options URL [items]   an HTTP request (hypersock get --help)
  ws URL                                               a WebSocket client (hypersock ws --help)
  serve [dir]                                          a static file server (hypersock serve --help)

  --version    the package version
  --help       this help`

async function main(argv, io) {
  const [command, ...rest] = argv
  if (!command || command === '--help' || command === '-h' || command === 'help') {
    io.out.write(`${HELP}\n`)
    return command ? EXIT.OK : EXIT.USAGE
  }
  if (command === '--version' || command === '-V') {
    const pkg = JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8'))
    io.out.write(`${pkg.version}\n`)
    return EXIT.OK
  }
  try {
    if (METHODS.includes(command.toLowerCase())) return await request(command, rest, io)
    if (command === 'ws') return await ws(rest, io)
    if (command === 'serve') return await serveDir(rest, io)
    throw new UsageError(`unknown command ${JSON.stringify(command)}`)
  } catch (err) {
    if (err instanceof UsageError) {
      const known = METHODS.includes(command.toLowerCase()) || command === 'ws' || command === 'serve'
      io.err.write(`hypersock: ${err.message}\n(see hypersock ${known ? `${command} ` : ''}--help)\n`)
      return EXIT.USAGE
    }
    const code = err?.code ? `${err.code}: ` : ''
    io.err.write(`hypersock: error ${code}${err?.message ?? err}\n`)
    return err?.code === 'ERR_INVALID_ARG_VALUE' || err?.code === 'ERR_INVALID_URL' ? EXIT.USAGE : EXIT.NETWORK
  }
}

const code = await main(process.argv.slice(2), { in: process.stdin, out: process.stdout, err: process.stderr })
// Let stdout drain before leaving (it may be a pipe).
process.stdout.write('', () => process.exit(code))

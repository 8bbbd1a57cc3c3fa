// `hypersock serve [dir]`: a static file server (as `npx serve` or `http-server`) on the server's
// own file support: files are answered in Rust (ETag, Range, precompressed siblings), directories
// without an index get a listing, every request goes to the access log.
import { readFileSync, statSync } from 'node:fs'
import { resolve } from 'node:path'
import { dir, serve } from '../dist/index.js'
import { generateCertificate } from '../dist/testing.js'
import { EXIT, integer, palette, parse, UsageError } from './args.mjs'

export const HELP = `usage: hypersock serve [dir] [options]

Serves the files under dir (default: the current directory): index.html for a directory, an HTML
listing for a directory without one, ETag/Last-Modified/304, Range, x.br/x.gz siblings; dotfiles
are not served. Each request is logged to stderr.

options:
  -p, --port N          port to listen on (default 8080; 0 picks a free one)
      --host ADDR       address to listen on (default 127.0.0.1; 0.0.0.0 or :: for all)
      --tls             HTTPS with a certificate made now for localhost, 127.0.0.1 and ::1
      --cert FILE       HTTPS with this certificate chain (PEM), with --key
      --key FILE        the private key (PEM) of --cert
      --http2           HTTP/2 only (default: HTTP/1.1 and HTTP/2)
      --http1           HTTP/1.1 only
      --no-listing      404 for a directory without index.html instead of a listing
      --cache SECONDS   send Cache-Control: max-age=SECONDS
  -q, --quiet           no access log
  -h, --help            this help`

const OPTIONS = {
  port: { type: 'string', short: 'p' },
  host: { type: 'string' },
  tls: { type: 'boolean' },
  cert: { type: 'string' },
  key: { type: 'string' },
  http2: { type: 'boolean' },
  http1: { type: 'boolean' },
  'no-listing': { type: 'boolean' },
  cache: { type: 'string' },
  quiet: { type: 'boolean', short: 'q' },
  help: { type: 'boolean', short: 'h' },
}

/** Serves until SIGINT or SIGTERM; returns the exit code. */
export async function serveDir(argv, io) {
  const { values, positionals } = parse(argv, OPTIONS)
  if (values.help) {
    io.out.write(`${HELP}\n`)
    return EXIT.OK
  }
  if (positionals.length > 1) throw new UsageError('one directory at most')
  const root = resolve(positionals[0] ?? '.')
  if (!statSync(root, { throwIfNoEntry: false })?.isDirectory()) throw new UsageError(`not a directory: ${root}`)
  if (values.http1 && values.http2) throw new UsageError('--http1 and --http2 exclude each other')
  if (Boolean(values.cert) !== Boolean(values.key)) throw new UsageError('--cert and --key go together')
  if (values.tls && values.cert) throw new UsageError('--tls makes a certificate; --cert brings one: pick one')
  const port = integer('port', values.port ?? '8080')
  if (port > 65535) throw new UsageError('--port must be at most 65535')
  const cache = integer('cache', values.cache)
  const tls = values.cert
    ? { cert: readFileSync(values.cert, 'utf8'), key: readFileSync(values.key, 'utf8') }
    : values.tls
      ? generateCertificate({ commonName: 'localhost' })
      : undefined
  const e = palette(io.err)
  const server = await serve({
    port,
    hostname: values.host ?? '127.0.0.1',
    tls,
    http2: values.http2 ? 'only' : !values.http1,
    routes: {
      '/*': dir(root, {
        listing: !values['no-listing'],
        ...(cache !== undefined ? { cacheControl: `max-age=${cache}` } : {}),
      }),
    },
    accessLog: values.quiet
      ? undefined
      : (entry) => {
          const color = entry.status >= 400 ? e.red : entry.status >= 300 ? e.yellow : e.green
          const path = new URL(entry.url).pathname
          io.err.write(
            `${new Date().toISOString()} ${entry.remoteAddress} ${entry.method} ${path} HTTP/${entry.httpVersion} ${color(entry.status)} ${entry.durationMs.toFixed(1)} ms\n`,
          )
        },
  })
  io.out.write(`serving ${root} at ${server.url.href}${values.tls ? ' (certificate made for localhost)' : ''}\n`)
  await new Promise((resolveStop) => {
    process.once('SIGINT', resolveStop)
    process.once('SIGTERM', resolveStop)
  })
  await server.stop()
  return EXIT.OK
}

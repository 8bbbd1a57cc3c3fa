// `hypersock get|post|put|patch|delete|head|options URL [items]`: HTTPie-like requests through
// the hypersock client.
import { createReadStream, createWriteStream, existsSync, readFileSync } from 'node:fs'
import { stat } from 'node:fs/promises'
import { basename } from 'node:path'
import { Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import { Client, CookieJar } from '../dist/index.js'
import { bytes, EXIT, integer, palette, parse, UsageError } from './args.mjs'

export const METHODS = ['get', 'post', 'put', 'patch', 'delete', 'head', 'options']

export const HELP = `usage: hypersock <method> URL [items...] [options]

methods: ${METHODS.join(', ')}

items (as HTTPie):
  Header:value      a request header
  name==value       a query parameter
  name=value        a JSON string field (a form field with --form)
  name:=json        a raw JSON field (1, true, [1,2], {"a":1})
  name@path         a file field (with --form: multipart upload)
  @path             the request body, from a file

options:
  -H, --header "Name: value"   a request header (repeatable)
  -f, --form                   send fields as a form (urlencoded, or multipart with files)
  -o, --output FILE            save the body to FILE, with a progress bar on a terminal
  -F, --follow                 follow redirects (default: show the redirect)
      --max-redirects N        most redirects followed (default 10)
      --retry N                retry N times on connect errors, 408/429/5xx (idempotent methods)
      --timeout MS             time for the whole request (default none)
      --http2                  insist on HTTP/2 (also h2c on http://)
  -k, --insecure               do not verify the server certificate
      --cacert FILE            trust the CA certificates (PEM) in FILE
      --proxy URL              send through this HTTP proxy
      --cookie-jar FILE        load cookies from FILE and save them back after the request
      --check-status           exit 1 when the status is 400 or more
  -v, --verbose                print the request, the TLS handshake and timings to stderr
  -b, --body                   print the body only, also on a terminal
  -h, --help                   this help

On a terminal the status, headers and body are shown (JSON pretty-printed, colored); piped, only
the body is written. Exit codes: 0 ok, 1 status >= 400 with --check-status, 2 usage, 3 network
or TLS error (its code is printed).`

const OPTIONS = {
  header: { type: 'string', short: 'H', multiple: true },
  form: { type: 'boolean', short: 'f' },
  output: { type: 'string', short: 'o' },
  follow: { type: 'boolean', short: 'F' },
  'max-redirects': { type: 'string' },
  retry: { type: 'string' },
  timeout: { type: 'string' },
  http2: { type: 'boolean' },
  insecure: { type: 'boolean', short: 'k' },
  cacert: { type: 'string' },
  proxy: { type: 'string' },
  'cookie-jar': { type: 'string' },
  'check-status': { type: 'boolean' },
  verbose: { type: 'boolean', short: 'v' },
  body: { type: 'boolean', short: 'b' },
  help: { type: 'boolean', short: 'h' },
}

/** Splits an item at its separator: the earliest one, the longest at that place. */
function item(text) {
  const seps = [':=', '==', '=', ':', '@']
  let best = null
  for (const sep of seps) {
    const at = text.indexOf(sep)
    if (at < 0) continue
    if (!best || at < best.at || (at === best.at && sep.length > best.sep.length)) best = { at, sep }
  }
  if (!best)
    throw new UsageError(
      `cannot read the item ${JSON.stringify(text)}: use Header:value, name=value, name:=json, name==value or @file`,
    )
  return { sep: best.sep, name: text.slice(0, best.at), value: text.slice(best.at + best.sep.length) }
}

function headerLine(line) {
  const at = line.indexOf(':')
  if (at <= 0) throw new UsageError(`a header is "Name: value", not ${JSON.stringify(line)}`)
  return [line.slice(0, at).trim(), line.slice(at + 1).trim()]
}

/** The request built from the items: URL with query, headers, body. */
async function build(method, rawUrl, items, form) {
  let url
  try {
    url = new URL(/^[a-z][a-z0-9+.-]*:\/\//i.test(rawUrl) ? rawUrl : `http://${rawUrl}`)
  } catch {
    throw new UsageError(`not a URL: ${rawUrl}`)
  }
  const headers = new Headers()
  const fields = []
  const files = []
  let bodyFile = null
  for (const text of items) {
    if (text.startsWith('@')) {
      bodyFile = text.slice(1)
      continue
    }
    const { sep, name, value } = item(text)
    if (sep === ':') headers.append(name, value)
    else if (sep === '==') url.searchParams.append(name, value)
    else if (sep === '=') fields.push([name, value])
    else if (sep === ':=') {
      try {
        fields.push([name, JSON.parse(value)])
      } catch {
        throw new UsageError(`${name}:= needs JSON, not ${value}`)
      }
    } else if (sep === '@') files.push([name, value])
  }
  if (bodyFile && (fields.length || files.length))
    throw new UsageError('@file is the whole body: it cannot go with fields')
  let body
  if (bodyFile) {
    const size = (await stat(bodyFile).catch(() => null))?.size
    if (size === undefined) throw new UsageError(`cannot read ${bodyFile}`)
    body = createReadStream(bodyFile)
    headers.set('content-length', String(size))
  } else if (form) {
    if (files.length) {
      const data = new FormData()
      for (const [k, v] of fields) data.append(k, typeof v === 'string' ? v : JSON.stringify(v))
      for (const [k, path] of files) {
        if (!existsSync(path)) throw new UsageError(`cannot read ${path}`)
        data.append(k, new Blob([readFileSync(path)]), basename(path))
      }
      body = data
    } else if (fields.length) {
      body = new URLSearchParams(fields.map(([k, v]) => [k, typeof v === 'string' ? v : JSON.stringify(v)]))
    }
  } else if (files.length) {
    throw new UsageError('file fields (name@path) need --form')
  } else if (fields.length) {
    body = JSON.stringify(Object.fromEntries(fields))
    if (!headers.has('content-type')) headers.set('content-type', 'application/json')
    if (!headers.has('accept')) headers.set('accept', 'application/json, */*;q=0.5')
  }
  if (body !== undefined && (method === 'GET' || method === 'HEAD')) {
    throw new UsageError(`${method} takes no body; use post, put or patch`)
  }
  return { url, headers, body }
}

/** A one-line progress bar on stderr: bytes, rate and ETA. */
function progressBar(err) {
  const started = performance.now()
  let last = 0
  return {
    update({ loaded, total }, done = false) {
      const now = performance.now()
      if (!done && now - last < 100) return
      last = now
      const secs = Math.max((now - started) / 1000, 0.001)
      const rate = loaded / secs
      const pct = total ? `${Math.floor((loaded / total) * 100)}%`.padStart(4) : ''
      const eta = total && rate > 0 && !done ? `  ETA ${Math.ceil((total - loaded) / rate)}s` : ''
      const of = total ? ` / ${bytes(total)}` : ''
      err.write(`\r${pct} ${bytes(loaded)}${of}  ${bytes(rate)}/s${eta}\x1b[K${done ? '\n' : ''}`)
    },
  }
}

function printTls(res, c, err) {
  const tls = res.tls
  if (!tls) return
  err.write(`${c.dim('* TLS')} ${tls.protocol} ${tls.cipher}${tls.alpnProtocol ? ` ALPN ${tls.alpnProtocol}` : ''}\n`)
  const cert = tls.chain[0]
  if (cert) {
    err.write(`${c.dim('* certificate')} ${cert.subject} issued by ${cert.issuer}\n`)
    err.write(`${c.dim('*   valid')} ${cert.validFrom.toISOString()} to ${cert.validTo.toISOString()}\n`)
    err.write(`${c.dim('*   SANs')} ${cert.subjectAltNames.join(', ')}\n`)
    err.write(`${c.dim('*   sha256')} ${cert.fingerprint256}\n`)
  }
}

function pretty(text, c) {
  try {
    const json = JSON.stringify(JSON.parse(text), null, 2)
    return c.on
      ? json.replace(/("(?:[^"\\]|\\.)*")(\s*:)?/g, (_m, s, colon) => (colon ? c.blue(s) + colon : c.green(s)))
      : json
  } catch {
    return text
  }
}

/** Runs one request; returns the exit code. */
export async function request(method, argv, io) {
  const { values, positionals } = parse(argv, OPTIONS)
  if (values.help) {
    io.out.write(`${HELP}\n`)
    return EXIT.OK
  }
  const [rawUrl, ...items] = positionals
  if (!rawUrl) throw new UsageError('a URL is needed')
  const upper = method.toUpperCase()
  const { url, headers, body } = await build(upper, rawUrl, items, values.form)
  for (const line of values.header ?? []) headers.append(...headerLine(line))
  const maxRedirects = integer('max-redirects', values['max-redirects'])
  const retries = integer('retry', values.retry)
  const timeout = integer('timeout', values.timeout, 1)
  let jar
  if (values['cookie-jar']) {
    jar = existsSync(values['cookie-jar']) ? await CookieJar.fromFile(values['cookie-jar']) : new CookieJar()
  }
  const client = new Client({
    http2: values.http2 ? 'always' : 'auto',
    tls: {
      ...(values.cacert ? { ca: readFileSync(values.cacert, 'utf8') } : {}),
      ...(values.insecure ? { rejectUnauthorized: false } : {}),
    },
    redirect: values.follow ? { mode: 'follow', max: maxRedirects ?? 10 } : 'manual',
    ...(retries ? { retry: { attempts: retries + 1 } } : {}),
    ...(timeout ? { timeout } : {}),
    ...(values.proxy ? { proxy: values.proxy } : {}),
    ...(jar ? { cookieJar: jar } : {}),
  })
  const c = palette(io.out)
  const e = palette(io.err)
  const showHead = io.out.isTTY && !values.body && !values.output
  if (values.verbose) {
    io.err.write(`${e.bold(`${upper} ${url.pathname}${url.search}`)} ${e.dim(url.host)}\n`)
    for (const [k, v] of headers) io.err.write(`${e.cyan(k)}: ${v}\n`)
    io.err.write('\n')
  }
  const started = performance.now()
  const bar = values.output && io.err.isTTY ? progressBar(io.err) : null
  const res = await client.fetch(url, {
    method: upper,
    headers,
    body,
    ...(bar ? { onDownloadProgress: (p) => bar.update(p) } : {}),
  })
  const headersAt = performance.now()
  if (values.verbose) printTls(res, e, io.err)
  if (showHead || values.verbose) {
    const sink = showHead ? io.out : io.err
    const p = showHead ? c : e
    const color = res.status >= 400 ? p.red : res.status >= 300 ? p.yellow : p.green
    sink.write(`${p.bold(res.httpVersion)} ${color(`${res.status} ${res.statusText}`)}\n`)
    for (const [k, v] of res.headers) sink.write(`${p.cyan(k)}: ${v}\n`)
    sink.write('\n')
  }
  let size = 0
  if (values.output) {
    const out = createWriteStream(values.output)
    if (res.body) await pipeline(res.body, out)
    else out.end()
    size = (await stat(values.output)).size
    bar?.update({ loaded: size, total: size }, true)
  } else if (res.body) {
    const type = res.headers.get('content-type') ?? ''
    if (showHead) {
      const buf = Buffer.from(await res.arrayBuffer())
      size = buf.length
      const text = buf.includes(0) ? null : buf.toString('utf8')
      if (text === null) io.out.write(c.dim(`[binary data, ${bytes(buf.length)}; use -o FILE or a pipe]\n`))
      else if (/json/i.test(type)) io.out.write(`${pretty(text, c)}\n`)
      else io.out.write(text.endsWith('\n') ? text : `${text}\n`)
    } else {
      const counter = new Writable({
        write(chunk, _enc, done) {
          size += chunk.length
          if (io.out.write(chunk)) done()
          else io.out.once('drain', done)
        },
      })
      await pipeline(res.body, counter)
    }
  }
  const endedAt = performance.now()
  if (values.verbose) {
    const ms = (t) => `${(t - started).toFixed(1)} ms`
    io.err.write(
      `${e.dim('* timings')} response headers after ${ms(headersAt)}, body (${bytes(size)}) after ${ms(endedAt)}; ${res.attempts} attempt(s), ${res.redirects.length} redirect(s)\n`,
    )
  }
  // Session cookies too: the next run of the command is the same session.
  if (jar) await jar.save(values['cookie-jar'], { includeSession: true })
  return values['check-status'] && res.status >= 400 ? EXIT.HTTP : EXIT.OK
}

// The `hypersock` command, driven as a subprocess against local servers: requests with items,
// forms, files, output with progress, redirects, retry, cookies, TLS, exit codes, and the
// WebSocket client piped and on a terminal (through `script`, which gives it a pty).
import { execFile, spawn } from 'node:child_process'
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { serve } from 'hypersock'
import { generateCertificate } from 'hypersock/testing'
import { describe, expect, it } from 'vitest'
import { trackServers } from './helpers.js'

const track = trackServers()
const cli = fileURLToPath(new URL('../cli/main.mjs', import.meta.url))
const dir = mkdtempSync(join(tmpdir(), 'hypersock-cli-'))

interface Run {
  code: number
  stdout: string
  stderr: string
}

function run(args: string[], input?: string): Promise<Run> {
  return new Promise((resolve) => {
    const child = execFile(
      process.execPath,
      [cli, ...args],
      { encoding: 'utf8', timeout: 20_000 },
      (err, stdout, stderr) => resolve({ code: err ? ((err as { code?: number }).code ?? 1) : 0, stdout, stderr }),
    )
    child.stdin?.end(input ?? '')
  })
}

/** An echo server: answers with what it got, as JSON. */
async function echo() {
  let attempts = 0
  const server = track(
    await serve({
      routes: {
        '/redirect': () => new Response(null, { status: 302, headers: { location: '/echo?from=redirect' } }),
        '/flaky': () => (++attempts < 3 ? new Response('busy', { status: 503 }) : new Response(`ok after ${attempts}`)),
        '/set': () => new Response('set', { headers: { 'set-cookie': 'session=abc; Path=/' } }),
        '/big': () => new Response(Buffer.alloc(3 << 20, 7)),
        '/missing': () => new Response('nope', { status: 404 }),
      },
      fetch: async (req) => {
        const body = await req.text()
        return Response.json({
          method: req.method,
          path: req.path,
          query: Object.fromEntries(req.query),
          headers: Object.fromEntries(req.headers),
          body,
        })
      },
      websocket: {
        message: (ws, data) =>
          data === 'bye' ? ws.close(4000, 'done') : ws.send(typeof data === 'string' ? `echo:${data}` : data),
      },
    }),
  )
  return `127.0.0.1:${server.port}`
}

describe('hypersock <method>', () => {
  it('sends JSON fields, raw JSON, query and headers; piped output is the body alone', async () => {
    const host = await echo()
    const r = await run([
      'post',
      `http://${host}/things`,
      'name=widget',
      'count:=3',
      'tags:=["a","b"]',
      'q==1',
      'X-Trace:t1',
      '-H',
      'X-Other: o',
    ])
    expect(r.code).toBe(0)
    const got = JSON.parse(r.stdout)
    expect(got.method).toBe('POST')
    expect(got.query).toEqual({ q: '1' })
    expect(got.headers['x-trace']).toBe('t1')
    expect(got.headers['x-other']).toBe('o')
    expect(got.headers['content-type']).toBe('application/json')
    expect(JSON.parse(got.body)).toEqual({ name: 'widget', count: 3, tags: ['a', 'b'] })
    // A host without a scheme is http://.
    expect(JSON.parse((await run(['get', `${host}/x`])).stdout).path).toBe('/x')
  })

  it('sends forms (urlencoded, multipart with a file) and a body from a file', async () => {
    const host = await echo()
    const file = join(dir, 'upload.txt')
    writeFileSync(file, 'file contents')
    const form = JSON.parse((await run(['post', `http://${host}/f`, '--form', 'a=1', 'b=two words'])).stdout)
    expect(form.headers['content-type']).toBe('application/x-www-form-urlencoded;charset=UTF-8')
    expect(form.body).toBe('a=1&b=two+words')
    const multi = JSON.parse((await run(['post', `http://${host}/f`, '-f', 'a=1', `doc@${file}`])).stdout)
    expect(multi.headers['content-type']).toMatch(/^multipart\/form-data; boundary=/)
    expect(multi.body).toContain('filename="upload.txt"')
    expect(multi.body).toContain('file contents')
    const raw = JSON.parse((await run(['put', `http://${host}/f`, `@${file}`])).stdout)
    expect(raw.method).toBe('PUT')
    expect(raw.body).toBe('file contents')
  })

  it('shows redirects unless --follow, retries with --retry, keeps cookies in a jar file', async () => {
    const host = await echo()
    const shown = await run(['get', `http://${host}/redirect`])
    expect(shown.code).toBe(0)
    expect(shown.stdout).toBe('')
    const followed = await run(['get', `http://${host}/redirect`, '--follow', '-v'])
    expect(JSON.parse(followed.stdout).query).toEqual({ from: 'redirect' })
    expect(followed.stderr).toMatch(/1 redirect\(s\)/)
    const retried = await run(['get', `http://${host}/flaky`, '--retry', '3'])
    expect(retried.stdout).toBe('ok after 3')
    const jar = join(dir, 'jar.json')
    await run(['get', `http://${host}/set`, '--cookie-jar', jar])
    expect(readFileSync(jar, 'utf8')).toContain('session')
    const sent = JSON.parse((await run(['get', `http://${host}/echo`, '--cookie-jar', jar])).stdout)
    expect(sent.headers.cookie).toBe('session=abc')
  })

  it('saves to a file with -o, and exits by status and error kind', async () => {
    const host = await echo()
    const out = join(dir, 'big.bin')
    const saved = await run(['get', `http://${host}/big`, '-o', out])
    expect(saved.code).toBe(0)
    expect(readFileSync(out).length).toBe(3 << 20)
    expect((await run(['get', `http://${host}/missing`])).code).toBe(0)
    const failed = await run(['get', `http://${host}/missing`, '--check-status'])
    expect([failed.code, failed.stdout]).toEqual([1, 'nope'])
    const refused = await run(['get', 'http://127.0.0.1:1/'])
    expect(refused.code).toBe(3)
    expect(refused.stderr).toContain('ECONNREFUSED')
    const usage = await run(['get', `http://${host}/`, '--folow'])
    expect(usage.code).toBe(2)
    expect(usage.stderr).toContain('did you mean --follow?')
    expect((await run(['get', `http://${host}/`, 'body=1'])).code).toBe(2)
    expect((await run(['frobnicate'])).code).toBe(2)
    expect((await run(['--version'])).stdout.trim()).toBe(
      JSON.parse(readFileSync(new URL('../package.json', import.meta.url), 'utf8')).version,
    )
  })

  it('verifies TLS (exit 3 with the TLS code), trusts --cacert, skips checks with --insecure, and shows the handshake with -v', async () => {
    const ca = generateCertificate({ isCa: true, commonName: 'cli test CA' })
    const leaf = generateCertificate({ ca })
    const caFile = join(dir, 'ca.pem')
    writeFileSync(caFile, ca.cert)
    const server = track(await serve({ tls: leaf, fetch: () => 'secure hello' }))
    const url = `https://localhost:${server.port}/`
    const untrusted = await run(['get', url])
    expect(untrusted.code).toBe(3)
    expect(untrusted.stderr).toContain('ERR_TLS_CERT_UNKNOWN_CA')
    const trusted = await run(['get', url, '--cacert', caFile, '-v'])
    expect(trusted.stdout).toBe('secure hello')
    expect(trusted.stderr).toMatch(/\* TLS TLSv1\.3 TLS13_/)
    expect(trusted.stderr).toContain('issued by CN=cli test CA')
    expect(trusted.stderr).toMatch(/response headers after [\d.]+ ms/)
    expect((await run(['get', url, '--insecure'])).stdout).toBe('secure hello')
    const h2 = await run(['get', url, '--cacert', caFile, '--http2', '-v'])
    expect(h2.stderr).toContain('ALPN h2')
  })
})

describe('hypersock ws', () => {
  it('piped: sends each line, prints each message, and waits for the replies at the end of input', async () => {
    const host = await echo()
    // The server closes after its last reply; the generous --wait only bounds a broken run.
    const r = await run(['ws', `ws://${host}/`, '--wait', '15000'], 'one\ntwo\nbye\n')
    expect(r.code).toBe(0)
    expect(r.stdout).toBe('echo:one\necho:two\n')
    expect(r.stderr).toContain('closed 4000 done')
    // Without replies to wait for, the end of input closes with 1000 once --wait is over.
    const quiet = await run(['ws', `ws://${host}/`, '--wait', '0'], '')
    expect([quiet.code, quiet.stderr.includes('closed 1000')]).toEqual([0, true])
  })

  it('fails with exit 3 and the error code when it cannot connect', async () => {
    const r = await run(['ws', 'ws://127.0.0.1:1/'])
    expect(r.code).toBe(3)
    expect(r.stderr).toContain('ECONNREFUSED')
  })

  it('on a terminal: interactive lines, /ping, /close with a code', async () => {
    const host = await echo()
    // `script` runs the command on a pty: stdin and stdout are terminals.
    const child = spawn('script', ['-qfec', `${process.execPath} ${cli} ws ws://${host}/`, '/dev/null'], {
      env: { ...process.env, NO_COLOR: '1' },
    })
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
    let out = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d.toString()
    })
    const until = async (text: string) => {
      for (let i = 0; i < 2000 && !out.includes(text); i++) await new Promise((r) => setTimeout(r, 10))
      expect(out, out).toContain(text)
    }
    await until('connected to')
    child.stdin.write('hello\r')
    await until('< echo:hello')
    child.stdin.write('/ping hb\r')
    await until('pong hb')
    child.stdin.write('/close 4001 bye\r')
    await until('closed 4001')
    const code = await exited
    expect(code).toBe(0)
  })
})

describe('hypersock serve', () => {
  /** Starts `hypersock serve` on a free port; resolves with its URL and a log reader. */
  async function start(args: string[]) {
    const child = spawn(process.execPath, [cli, 'serve', ...args, '--port', '0'])
    let out = ''
    let err = ''
    child.stdout.on('data', (d: Buffer) => {
      out += d
    })
    child.stderr.on('data', (d: Buffer) => {
      err += d
    })
    const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)))
    for (let i = 0; i < 2000 && !out.includes('serving'); i++) await new Promise((r) => setTimeout(r, 10))
    const url = /at (\S+)/.exec(out)?.[1]
    expect(url, `${out}\n${err}`).toBeTruthy()
    return { url: url as string, child, exited, log: () => err }
  }

  it('serves files, ranges and listings, logs every request, and stops on SIGTERM', async () => {
    const root = mkdtempSync(join(tmpdir(), 'hypersock-serve-'))
    writeFileSync(join(root, 'hello.txt'), 'hello world')
    const { url, child, exited, log } = await start([root])
    const file = await fetch(new URL('/hello.txt', url))
    expect(await file.text()).toBe('hello world')
    const etag = file.headers.get('etag') as string
    expect((await fetch(new URL('/hello.txt', url), { headers: { 'if-none-match': etag } })).status).toBe(304)
    const part = await fetch(new URL('/hello.txt', url), { headers: { range: 'bytes=0-4' } })
    expect([part.status, await part.text()]).toEqual([206, 'hello'])
    const listing = await (await fetch(url)).text()
    expect(listing).toContain('<a href="./hello.txt">hello.txt</a>')
    expect((await fetch(new URL('/missing', url))).status).toBe(404)
    for (let i = 0; i < 500 && !log().includes('/missing'); i++) await new Promise((r) => setTimeout(r, 10))
    expect(log()).toMatch(/GET \/hello\.txt HTTP\/1\.1 200/)
    expect(log()).toMatch(/GET \/hello\.txt HTTP\/1\.1 304/)
    expect(log()).toMatch(/GET \/ HTTP\/1\.1 200/)
    expect(log()).toMatch(/GET \/missing HTTP\/1\.1 404/)
    child.kill('SIGTERM')
    expect(await exited).toBe(0)
  })

  it('--tls serves HTTPS with a certificate made for localhost; bad arguments exit 2', async () => {
    const root = mkdtempSync(join(tmpdir(), 'hypersock-serve-'))
    writeFileSync(join(root, 'index.html'), '<h1>secure</h1>')
    const { url, child, exited } = await start([root, '--tls', '--quiet'])
    expect(url).toMatch(/^https:/)
    const got = await run(['get', url, '--insecure', '-v'])
    expect(got.stdout).toBe('<h1>secure</h1>')
    expect(got.stderr).toContain('CN=localhost')
    child.kill('SIGTERM')
    expect(await exited).toBe(0)
    expect((await run(['serve', join(root, 'nope')])).code).toBe(2)
    expect((await run(['serve', root, '--http1', '--http2'])).code).toBe(2)
    expect((await run(['serve', root, '--prot', '1'])).stderr).toContain('did you mean --port?')
  })
})

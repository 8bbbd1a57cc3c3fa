// file() and dir() routes through a real server: types, validators and 304, ranges, HEAD,
// precompressed siblings, and every spelling of path traversal sent raw on the wire (clients
// would normalise most of them away).
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { brotliCompressSync, gzipSync } from 'node:zlib'
import { dir, file, type Server, serve } from 'hypersock'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { caught, exchange } from './helpers.js'

let root: string
let outside: string
let server: Server
const big = Buffer.alloc(300 * 1024)
for (let i = 0; i < big.length; i++) big[i] = (i * 7) % 251

beforeAll(async () => {
  const base = mkdtempSync(join(tmpdir(), 'hypersock-files-'))
  root = join(base, 'public')
  outside = join(base, 'secret.txt')
  mkdirSync(join(root, 'docs'), { recursive: true })
  writeFileSync(outside, 'outside the root')
  writeFileSync(join(root, 'index.html'), '<h1>home</h1>')
  writeFileSync(join(root, 'app.js'), 'console.log(1)'.repeat(100))
  writeFileSync(join(root, 'app.js.br'), brotliCompressSync('console.log(1)'.repeat(100)))
  writeFileSync(join(root, 'app.js.gz'), gzipSync('console.log(1)'.repeat(100)))
  writeFileSync(join(root, 'big.bin'), big)
  writeFileSync(join(root, 'docs', 'index.html'), 'docs index')
  writeFileSync(join(root, '.env'), 'SECRET=1')
  symlinkSync(outside, join(root, 'escape.txt'))
  symlinkSync(join(root, 'index.html'), join(root, 'inside.html'))
  server = await serve({
    routes: {
      '/static/*': dir(root, { cacheControl: 'public, max-age=60' }),
      '/favicon.ico': file(join(root, 'app.js')),
    },
    fetch: () => new Response('fallback', { status: 404 }),
  })
})

afterAll(async () => {
  await server?.stop({ graceful: false })
  rmSync(join(root, '..'), { recursive: true, force: true })
})

async function raw(path: string, headers = '', method = 'GET') {
  const { responses } = await exchange(
    server.port,
    `${method} ${path} HTTP/1.1\r\nHost: x\r\n${headers}\r\n`,
    1,
    method === 'HEAD',
  )
  return responses[0] as { status: number; headers: Map<string, string>; body: Buffer }
}

describe('file and directory routes', () => {
  it('serve files with their type, length, validators and cache-control', async () => {
    const res = await fetch(new URL('/static/index.html', server.url))
    expect(res.status).toBe(200)
    expect(res.headers.get('content-type')).toBe('text/html; charset=utf-8')
    expect(res.headers.get('cache-control')).toBe('public, max-age=60')
    expect(res.headers.get('etag')).toMatch(/^W\/"/)
    expect(res.headers.get('last-modified')).toMatch(/GMT$/)
    expect(await res.text()).toBe('<h1>home</h1>')
    const index = await fetch(new URL('/static/docs/', server.url))
    expect(await index.text()).toBe('docs index')
    const ico = await fetch(new URL('/favicon.ico', server.url), { headers: { 'accept-encoding': 'identity' } })
    expect([ico.status, ico.headers.get('content-type')]).toEqual([200, 'text/javascript; charset=utf-8'])
  })

  it('answer 304 to a matching If-None-Match or If-Modified-Since', async () => {
    const first = await fetch(new URL('/static/index.html', server.url))
    const etag = first.headers.get('etag') as string
    const modified = first.headers.get('last-modified') as string
    const byTag = await raw('/static/index.html', `If-None-Match: ${etag}\r\n`)
    expect([byTag.status, byTag.body.length, byTag.headers.get('etag')]).toEqual([304, 0, etag])
    const byDate = await raw('/static/index.html', `If-Modified-Since: ${modified}\r\n`)
    expect(byDate.status).toBe(304)
    const other = await raw('/static/index.html', 'If-None-Match: W/"nope"\r\n')
    expect(other.status).toBe(200)
  })

  it('serve ranges (206), refuse unsatisfiable ones (416), and stream a large file whole', async () => {
    const part = await raw('/static/big.bin', 'Range: bytes=100000-100009\r\n')
    expect([part.status, part.headers.get('content-range')]).toEqual([206, `bytes 100000-100009/${big.length}`])
    expect(part.body.equals(big.subarray(100000, 100010))).toBe(true)
    const suffix = await raw('/static/big.bin', 'Range: bytes=-5\r\n')
    expect(suffix.body.equals(big.subarray(big.length - 5))).toBe(true)
    const bad = await raw('/static/big.bin', `Range: bytes=${big.length}-\r\n`)
    expect([bad.status, bad.headers.get('content-range')]).toEqual([416, `bytes */${big.length}`])
    const whole = await fetch(new URL('/static/big.bin', server.url))
    expect(Buffer.from(await whole.arrayBuffer()).equals(big)).toBe(true)
    const head = await raw('/static/big.bin', '', 'HEAD')
    expect([head.status, head.headers.get('content-length'), head.body.length]).toEqual([200, String(big.length), 0])
  })

  it('choose a precompressed sibling by Accept-Encoding, br first', async () => {
    const br = await raw('/static/app.js', 'Accept-Encoding: gzip, br\r\n')
    expect([br.headers.get('content-encoding'), br.headers.get('vary')]).toEqual(['br', 'Accept-Encoding'])
    expect(br.headers.get('content-type')).toBe('text/javascript; charset=utf-8')
    const gz = await raw('/static/app.js', 'Accept-Encoding: gzip\r\n')
    expect(gz.headers.get('content-encoding')).toBe('gzip')
    const refused = await raw('/static/app.js', 'Accept-Encoding: br;q=0, gzip;q=0\r\n')
    expect(refused.headers.get('content-encoding')).toBeUndefined()
    // fetch decodes the brotli body back to the file.
    const decoded = await fetch(new URL('/static/app.js', server.url))
    expect(await decoded.text()).toBe('console.log(1)'.repeat(100))
  })

  it('refuse path traversal in every spelling with 404', async () => {
    for (const path of [
      '/static/../secret.txt',
      '/static/docs/../../secret.txt',
      '/static/%2e%2e/secret.txt',
      '/static/%2E%2E/secret.txt',
      '/static/.%2e/secret.txt',
      '/static/docs%2f..%2f..%2fsecret.txt',
      '/static/docs%2F..%2F..%2Fsecret.txt',
      '/static/..%5csecret.txt',
      '/static/..\\secret.txt',
      '/static/index.html%00.js',
      '/static//etc/passwd',
      '/static/%2fetc%2fpasswd',
      '/static/C:/Windows/win.ini',
      '/static/escape.txt',
      '/static/.env',
    ]) {
      const res = await raw(path)
      expect([path, res.status]).toEqual([path, 404])
      expect(res.body.toString()).not.toContain('outside the root')
    }
    // A symlink that stays inside the root is served.
    expect((await raw('/static/inside.html')).status).toBe(200)
  })

  it('answer 405 to other methods and fail to start on a missing root', async () => {
    const post = await raw('/static/index.html', 'Content-Length: 0\r\n', 'POST')
    expect([post.status, post.headers.get('allow')]).toEqual([405, 'GET, HEAD'])
    const missing = await caught(() => serve({ routes: { '/x/*': dir(join(root, 'nope')) } }))
    expect(missing.code).toBe('ERR_INVALID_ARG_VALUE')
    const notStar = await caught(() => serve({ routes: { '/x': dir(root) } }))
    expect(notStar.message).toMatch(/ending in '\/\*'/)
    const typo = await caught(() => dir(root, { cachecontrol: 'x' } as never))
    expect(typo.message).toMatch(/did you mean 'cacheControl'/)
  })
})

describe('directory listings and the access log of route answers', () => {
  it('list a directory without its index, and log requests the engine answered', async () => {
    const base = mkdtempSync(join(tmpdir(), 'hypersock-listing-'))
    mkdirSync(join(base, 'sub'))
    writeFileSync(join(base, 'a <b>.txt'), 'hello')
    writeFileSync(join(base, '.secret'), 'no')
    const log: Array<[string, string, number, string]> = []
    const listing = await serve({
      routes: { '/files/*': dir(base, { listing: true }), '/fixed': 'fixed' },
      fetch: () => new Response('from js', { status: 404 }),
      accessLog: (e) => log.push([e.method, new URL(e.url).pathname + new URL(e.url).search, e.status, e.httpVersion]),
    })
    try {
      const page = await fetch(new URL('/files/', listing.url))
      expect(page.headers.get('content-type')).toBe('text/html; charset=utf-8')
      const html = await page.text()
      expect(html).toContain('<a href="./sub/">sub/</a>')
      expect(html).toContain('<a href="./a%20%3Cb%3E.txt">a &lt;b&gt;.txt</a>')
      expect(html).not.toContain('secret')
      // The listing's links lead to the files.
      expect(await (await fetch(new URL('/files/a%20%3Cb%3E.txt', listing.url))).text()).toBe('hello')
      const moved = await raw2(listing, '/files/sub')
      expect([moved.status, moved.headers.get('location')]).toEqual([308, 'sub/'])
      expect((await fetch(new URL('/fixed?x=1', listing.url))).status).toBe(200)
      expect((await fetch(new URL('/other', listing.url))).status).toBe(404)
      // Route answers (in Rust) and the handler's (in JS) all reach the log.
      while (log.length < 5) await new Promise((r) => setTimeout(r, 5))
      expect(log.sort()).toEqual(
        [
          ['GET', '/files/', 200, '1.1'],
          ['GET', '/files/a%20%3Cb%3E.txt', 200, '1.1'],
          ['GET', '/files/sub', 308, '1.1'],
          ['GET', '/fixed?x=1', 200, '1.1'],
          ['GET', '/other', 404, '1.1'],
        ].sort(),
      )
      expect((await caught(() => file(join(base, 'a <b>.txt'), { listing: true }))).message).toMatch(/option of dir/)
    } finally {
      await listing.stop({ graceful: false })
      rmSync(base, { recursive: true, force: true })
    }
  })
})

async function raw2(target: Server, path: string) {
  const { responses } = await exchange(target.port, `GET ${path} HTTP/1.1\r\nHost: x\r\n\r\n`, 1, false)
  return responses[0] as { status: number; headers: Map<string, string>; body: Buffer }
}

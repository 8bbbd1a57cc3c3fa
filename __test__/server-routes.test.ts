// serve({ routes }): matching in the engine, parameters, per-method routes, static responses
// answered without JS, reload under load, and the errors a bad table gets.
import { execFile, execFileSync } from 'node:child_process'
import { promisify } from 'node:util'
import { fetch as hsFetch, Response, type Server, serve } from 'hypersock'
import { afterAll, describe, expect, it } from 'vitest'
import { caught, exchange } from './helpers.js'

const run = promisify(execFile)
const servers: Server[] = []
afterAll(async () => {
  await Promise.all(servers.map((s) => s.stop({ graceful: false })))
})

async function start(options: Parameters<typeof serve>[0]): Promise<Server> {
  const server = await serve(options)
  servers.push(server)
  return server
}

describe('routes', () => {
  it('match exact paths, :params (decoded), a final *, and fall back to fetch', async () => {
    const server = await start({
      routes: {
        '/': () => 'home',
        '/users/:id': (req) => Response.json({ route: req.route, params: req.params }),
        '/users/new': () => 'new user form',
        '/files/*': (req) => Response.json({ rest: req.params['*'] ?? null }),
        '/a/:x/b/:y': (req) => `${req.params.x}+${req.params.y}`,
      },
      fetch: (req) => ({ status: 404, body: `fallback ${req.path} ${req.route}` }),
    })
    const get = async (path: string) => {
      const res = await fetch(new URL(path, server.url))
      return [res.status, await res.text()]
    }
    expect(await get('/')).toEqual([200, 'home'])
    expect(await get('/users/a%20b%2Fc')).toEqual([
      200,
      JSON.stringify({ route: '/users/:id', params: { id: 'a b/c' } }),
    ])
    expect(await get('/users/new')).toEqual([200, 'new user form'])
    expect(await get('/files/x/y.txt?q=1')).toEqual([200, JSON.stringify({ rest: 'x/y.txt' })])
    expect(await get('/files/')).toEqual([200, JSON.stringify({ rest: '' })])
    expect(await get('/a/1/b/2')).toEqual([200, '1+2'])
    expect(await get('/users')).toEqual([404, 'fallback /users null'])
    expect(await get('/users/1/extra')).toEqual([404, 'fallback /users/1/extra null'])
  })

  it('per-method objects answer their methods, HEAD follows GET, others get 405 with Allow', async () => {
    const server = await start({
      routes: {
        '/items/:id': {
          GET: (req) => `get ${req.params.id}`,
          DELETE: (req) => ({ status: 204, body: null, headers: { 'x-deleted': req.params.id as string } }),
        },
      },
    })
    const url = new URL('/items/9', server.url)
    expect(await (await fetch(url)).text()).toBe('get 9')
    const head = await fetch(url, { method: 'HEAD' })
    expect([head.status, head.headers.get('content-length')]).toEqual([200, '5'])
    const del = await fetch(url, { method: 'DELETE' })
    expect([del.status, del.headers.get('x-deleted')]).toEqual([204, '9'])
    const post = await fetch(url, { method: 'POST', body: 'x' })
    expect([post.status, post.headers.get('allow'), await post.text()]).toEqual([
      405,
      'GET, DELETE, HEAD',
      'method not allowed\n',
    ])
    // Without fetch, a path no route takes gets 404 from the server.
    const missing = await fetch(new URL('/nothing', server.url))
    expect([missing.status, await missing.text()]).toEqual([404, 'not found\n'])
  })

  it('static values are answered by the engine while the JS thread is blocked', async () => {
    const body = new Uint8Array([0, 1, 2, 255])
    const server = await start({
      routes: {
        '/text': 'static text',
        '/bytes': body,
        '/global': new globalThis.Response('{"a":1}', { status: 201, headers: { 'content-type': 'application/json' } }),
        '/ours': new Response('ours', { headers: { 'x-a': '1', 'set-cookie': 'a=1' } }),
        '/json': Response.json({ ok: true }),
        '/empty': new Response(null, { status: 204 }),
      },
      fetch: () => 'dynamic',
    })
    const base = `http://127.0.0.1:${server.port}`
    // execFileSync blocks this thread: only the engine can answer while curl runs.
    const out = execFileSync(
      'curl',
      [
        '-s',
        '--max-time',
        '10',
        '-w',
        '|%{http_code}|%{content_type}\n',
        `${base}/text`,
        `${base}/global`,
        `${base}/ours`,
        `${base}/json`,
        `${base}/empty`,
      ],
      { encoding: 'utf8' },
    )
    expect(out.trim().split('\n')).toEqual([
      'static text|200|text/plain;charset=utf-8',
      '{"a":1}|201|application/json',
      'ours|200|text/plain;charset=UTF-8',
      '{"ok":true}|200|application/json',
      '|204|',
    ])
    const bytes = execFileSync('curl', ['-s', '--max-time', '10', `${base}/bytes`])
    expect([...bytes]).toEqual([0, 1, 2, 255])
    const headers = await fetch(`${base}/ours`)
    expect([headers.headers.get('x-a'), headers.headers.get('set-cookie')]).toEqual(['1', 'a=1'])
    const head = await exchange(server.port, 'HEAD /text HTTP/1.1\r\nHost: x\r\n\r\n', 1, true)
    expect([head.responses[0]?.status, head.responses[0]?.headers.get('content-length')]).toEqual([200, '11'])
    expect(server.stats().responses['2xx']).toBeGreaterThanOrEqual(8)
  })

  it('reload() swaps routes and fetch under load without a failed request', async () => {
    const server = await start({
      routes: { '/v': () => 'v1', '/static': 'static v1' },
      fetch: () => 'fallback v1',
    })
    const url = new URL('/v', server.url)
    const seen = new Set<string>()
    let failures = 0
    let stop = false
    const client = async () => {
      for (let i = 0; i < 400 && !stop; i++) {
        try {
          const res = await hsFetch(url)
          if (res.status !== 200) failures++
          seen.add(await res.text())
        } catch {
          failures++
        }
      }
    }
    const load = Promise.all([client(), client(), client(), client()])
    for (let v = 2; v <= 6; v++) {
      await new Promise((r) => setTimeout(r, 5))
      await server.reload({ routes: { '/v': () => `v${v}`, '/static': `static v${v}` } })
    }
    stop = true
    await load
    expect(failures).toBe(0)
    expect(await (await fetch(url)).text()).toBe('v6')
    expect(await (await fetch(new URL('/static', server.url))).text()).toBe('static v6')
    for (const body of seen) expect(body).toMatch(/^v[1-6]$/)
    // fetch alone, then a table without /v: it falls to the new fetch.
    await server.reload({ fetch: () => 'fallback v2' })
    await server.reload({ routes: {} })
    expect(await (await fetch(url)).text()).toBe('fallback v2')
  })

  it('reloads take effect in the order they were called', async () => {
    const server = await start({ routes: { '/x': 'start' } })
    // The first reads a global Response (several event-loop turns), the second has nothing to read.
    const first = server.reload({ routes: { '/x': new globalThis.Response('A') } })
    const second = server.reload({ routes: { '/x': () => 'B' } })
    await Promise.all([first, second])
    expect(await (await fetch(new URL('/x', server.url))).text()).toBe('B')
  })

  it('a literal that is not ASCII matches the path as clients send it', async () => {
    const server = await start({ routes: { '/café/:x': (req) => req.params.x as string } })
    expect(await (await fetch(new URL('/café/é', server.url))).text()).toBe('é')
  })

  it('a table the engine refuses leaves the one in force', async () => {
    const server = await start({ routes: { '/x': () => 'x1' } })
    const bad = await caught(() => server.reload({ routes: { '/x': () => 'x2', '/:a': () => 'a', '/:b': () => 'b' } }))
    expect(bad.code).toBe('ERR_INVALID_ARG_VALUE')
    expect(bad.message).toMatch(/conflict/)
    expect(await (await fetch(new URL('/x', server.url))).text()).toBe('x1')
  })

  it('bad tables throw clear errors', async () => {
    const cases: Array<[Record<string, unknown>, RegExp]> = [
      [{ users: () => '' }, /starts with '\/'/],
      [{ '/a/*/b': () => '' }, /last segment/],
      [{ '/:a/:a': () => '' }, /twice/],
      [{ '/x': { get: () => '' } }, /did you mean GET/],
      [{ '/x': {} }, /has no methods/],
      [{ '/x': 42 }, /must be a handler function, a Response/],
      [{ '/x': { GET: 42 } }, /routes\["\/x"\]\.GET must be/],
    ]
    for (const [routes, message] of cases) {
      const err = await caught(() => serve({ routes: routes as never }))
      expect(err.code, String(message)).toBe('ERR_INVALID_ARG_VALUE')
      expect(err.message).toMatch(message)
    }
    const noHandler = await caught(() => serve({} as never))
    expect(noHandler.message).toMatch(/needs routes or a fetch/)
    const typo = await caught(() => serve({ route: {}, fetch: () => '' } as never))
    expect(typo.message).toMatch(/did you mean 'routes'/)
  })

  it('a request matched by a route reaches its handler through curl and HTTP/2 too', async () => {
    const server = await start({ routes: { '/h2/:n': (req) => `n=${req.params.n} v=${req.httpVersion}` } })
    const { stdout } = await run('curl', [
      '-s',
      '--http2-prior-knowledge',
      `http://127.0.0.1:${server.port}/h2/%E2%9C%93`,
    ])
    expect(stdout).toBe('n=\u2713 v=2')
  })
})

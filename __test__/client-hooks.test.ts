// The client's hooks (beforeRequest, afterResponse), baseURL and compose(): against a hypersock
// server that echoes what it got and counts its requests.
import { Client, type ClientResponse, type Interceptor, serve } from 'hypersock'
import { describe, expect, it } from 'vitest'
import { caught, trackServers } from './helpers.js'

const track = trackServers()

interface Echo {
  method: string
  path: string
  auth: string | null
}

async function echoServer(): Promise<{ base: string; hits: () => number }> {
  let hits = 0
  const server = track(
    await serve({
      fetch: (req) => {
        hits++
        if (req.path === '/private' && req.headers.get('authorization') !== 'Bearer fresh') {
          return { status: 401, body: 'who are you' }
        }
        return Response.json({ method: req.method, path: req.path, auth: req.headers.get('authorization') })
      },
    }),
  )
  return { base: `http://127.0.0.1:${server.port}`, hits: () => hits }
}

describe('client: baseURL and hooks', () => {
  it('baseURL resolves relative URLs and leaves absolute ones alone', async () => {
    const { base } = await echoServer()
    const client = new Client({ baseURL: `${base}/api/` })
    expect(((await (await client.fetch('users')).json()) as Echo).path).toBe('/api/users')
    expect(((await (await client.fetch('/root')).json()) as Echo).path).toBe('/root')
    expect(((await (await client.fetch(`${base}/abs`)).json()) as Echo).path).toBe('/abs')
  })

  it('beforeRequest changes the URL, method and headers; afterResponse can send again and replace', async () => {
    const { base, hits } = await echoServer()
    let token = 'stale'
    const seen: string[] = []
    const client: Client = new Client({
      hooks: {
        beforeRequest: [
          (req) => {
            req.headers.set('authorization', `Bearer ${token}`)
          },
          async (req) => {
            if (req.url.endsWith('/moved')) req.url = `${base}/private`
            seen.push(`${req.method} ${new URL(req.url).pathname}`)
          },
        ],
        afterResponse: [
          async (res, req) => {
            if (res.status !== 401) return undefined
            await res.text()
            token = 'fresh'
            return client.fetch(req.url, { method: req.method })
          },
        ],
      },
    })
    const res = await client.fetch(`${base}/moved`)
    expect([res.status, ((await res.json()) as Echo).auth]).toEqual([200, 'Bearer fresh'])
    expect(seen).toEqual(['GET /private', 'GET /private'])
    expect(hits()).toBe(2)
  })

  it('beforeRetry runs before each retry with what failed; one that throws stops the retries', async () => {
    let calls = 0
    const server = track(
      await serve({
        fetch: () => {
          calls++
          return calls < 3 ? { status: 503, body: 'busy' } : 'ok'
        },
      }),
    )
    const seen: string[] = []
    const client = new Client({
      retry: { attempts: 5, baseDelay: 1, maxDelay: 2 },
      hooks: { beforeRetry: [(ctx) => void seen.push(`${ctx.attempt}:${ctx.status}:${ctx.willRetry}`)] },
    })
    const res = await client.fetch(`http://127.0.0.1:${server.port}/`)
    expect([res.status, await res.text()]).toEqual([200, 'ok'])
    expect(seen).toEqual(['1:503:true', '2:503:true'])
    // A hook that throws: no retry, the 503 is the answer.
    calls = 0
    const stopping = new Client({
      retry: { attempts: 5, baseDelay: 1 },
      hooks: {
        beforeRetry: [
          () => {
            throw new Error('no more')
          },
        ],
      },
    })
    const stopped = await stopping.fetch(`http://127.0.0.1:${server.port}/`)
    expect([stopped.status, calls]).toEqual([503, 1])
    // Without retries configured the hook never runs.
    calls = 0
    let ran = 0
    const none = new Client({ hooks: { beforeRetry: [() => void ran++] } })
    expect((await none.fetch(`http://127.0.0.1:${server.port}/`)).status).toBe(503)
    expect(ran).toBe(0)
  })

  it('beforeRedirect sees each hop, may put back a header the rules dropped, and may refuse one', async () => {
    const target = track(
      await serve({
        hostname: '127.0.0.2',
        fetch: (req) => Response.json({ auth: req.headers.get('authorization'), method: req.method }),
      }),
    )
    const other = `http://127.0.0.2:${target.port}/landed`
    const origin = track(
      await serve({
        fetch: (req) =>
          req.path === '/post'
            ? { status: 303, headers: { location: '/hop' } }
            : { status: 302, headers: { location: other } },
      }),
    )
    const seen: string[] = []
    const client = new Client({
      hooks: {
        beforeRedirect: [
          (req, hop) => {
            seen.push(
              `${hop.status} ${new URL(hop.from).pathname} -> ${req.method} ${req.url} auth=${req.headers.get('authorization')}`,
            )
            if (new URL(req.url).hostname === '127.0.0.2') req.headers.set('authorization', 'Bearer for-trusted')
          },
        ],
      },
    })
    const res = await client.fetch(`http://127.0.0.1:${origin.port}/post`, {
      method: 'POST',
      body: 'x',
      headers: { authorization: 'Bearer secret' },
    })
    expect(await res.json()).toEqual({ auth: 'Bearer for-trusted', method: 'GET' })
    expect(seen).toEqual([
      `303 /post -> GET http://127.0.0.1:${origin.port}/hop auth=Bearer secret`,
      `302 /hop -> GET ${other} auth=null`,
    ])
    expect(res.redirects.map((h) => h.status)).toEqual([303, 302])
    const refusing = new Client({
      hooks: {
        beforeRedirect: [
          (req) => {
            if (!req.url.startsWith('http://127.0.0.1:')) throw new Error('off-site redirect')
          },
        ],
      },
    })
    const err = await caught(() => refusing.fetch(`http://127.0.0.1:${origin.port}/start`))
    expect(err.code).toBe('ERR_REDIRECT_REFUSED')
    expect(err.message).toMatch(/off-site redirect/)
  })

  it('bad hooks are refused', async () => {
    expect((await caught(() => new Client({ hooks: { beforeRequset: [] } as never }))).message).toContain(
      "did you mean 'beforeRequest'",
    )
    expect((await caught(() => new Client({ hooks: { afterResponse: [1] } as never }))).code).toBe(
      'ERR_INVALID_ARG_VALUE',
    )
  })
})

describe('client: compose()', () => {
  it('runs interceptors outermost first: logging, and a cache that answers without the network', async () => {
    const { base, hits } = await echoServer()
    const log: string[] = []
    const logging: Interceptor = (next) => async (input, init) => {
      const res = await next(input, init)
      log.push(`${init?.method ?? 'GET'} ${String(input)} ${res.status}`)
      return res
    }
    const cache = new Map<string, ClientResponse>()
    const caching: Interceptor = (next) => async (input, init) => {
      const key = String(input)
      const hit = cache.get(key)
      if (hit) return hit
      const res = await next(input, init)
      cache.set(key, res)
      return res
    }
    const client = new Client()
    const composed = client.compose(logging, caching)
    const first = await composed.fetch(`${base}/a`)
    const second = await composed.fetch(`${base}/a`)
    expect(second).toBe(first)
    expect(hits()).toBe(1)
    expect(log).toEqual([`GET ${base}/a 200`, `GET ${base}/a 200`])
    // The client itself is unchanged.
    await (await client.fetch(`${base}/a`)).text()
    expect(hits()).toBe(2)
    expect(() => client.compose(42 as never)).toThrow(expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }))
  })
})

// Redirect rules and retry policy, against node:http and node:https peers.
import { once } from 'node:events'
import http from 'node:http'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { Client, ConnectionError, type HypersockError, RedirectError, type RetryContext } from 'hypersock'
import { generateCertificate } from 'hypersock/testing'
import { afterEach, describe, expect, it } from 'vitest'
import { freePort } from './helpers.js'

interface Seen {
  method: string
  url: string
  headers: http.IncomingHttpHeaders
  body: string
}

const cleanups: (() => void)[] = []
afterEach(() => {
  for (const c of cleanups.splice(0)) c()
})

async function peer(
  route: (req: http.IncomingMessage, res: http.ServerResponse, seen: Seen[]) => void,
  options?: https.ServerOptions,
) {
  const seen: Seen[] = []
  const handler = (req: http.IncomingMessage, res: http.ServerResponse) => {
    const chunks: Buffer[] = []
    req.on('data', (c: Buffer) => chunks.push(c))
    req.on('end', () => {
      seen.push({
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString(),
      })
      route(req, res, seen)
    })
  }
  const server = options ? https.createServer(options, handler) : http.createServer(handler)
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  cleanups.push(() => {
    server.closeAllConnections()
    server.close()
  })
  const port = (server.address() as AddressInfo).port
  return { url: `${options ? 'https' : 'http'}://127.0.0.1:${port}`, port, seen }
}

function redirect(res: http.ServerResponse, status: number, location: string): void {
  res.writeHead(status, { location })
  res.end()
}

async function code(p: Promise<unknown>): Promise<string> {
  const err = await p.then(
    () => null,
    (e: unknown) => e as HypersockError,
  )
  return err?.code ?? 'no error'
}

describe('client redirects', () => {
  it('301/302/303 turn POST into GET and drop the body; the hops are listed', async () => {
    const { url, seen } = await peer((req, res) => {
      if (req.url === '/start') return redirect(res, 302, '/second')
      if (req.url === '/second') return redirect(res, 303, 'third?x=1')
      res.end(`${req.method} ${req.url}`)
    })
    const res = await new Client().fetch(`${url}/start`, { method: 'POST', body: 'payload' })
    expect(await res.text()).toBe('GET /third?x=1')
    expect(res.redirected).toBe(true)
    expect(res.url).toBe(`${url}/third?x=1`)
    expect(res.redirects).toEqual([
      { url: `${url}/start`, status: 302, location: `${url}/second` },
      { url: `${url}/second`, status: 303, location: `${url}/third?x=1` },
    ])
    expect(seen.map((s) => [s.method, s.body, s.headers['content-type'] ?? null])).toEqual([
      ['POST', 'payload', 'text/plain;charset=UTF-8'],
      ['GET', '', null],
      ['GET', '', null],
    ])
  })

  it('307/308 keep the method and the body', async () => {
    const { url, seen } = await peer((req, res) => {
      if (req.url === '/a') return redirect(res, 307, '/b')
      if (req.url === '/b') return redirect(res, 308, '/c')
      res.end('done')
    })
    const res = await new Client().fetch(`${url}/a`, { method: 'PUT', body: 'keep me' })
    expect(await res.text()).toBe('done')
    expect(seen.map((s) => `${s.method} ${s.url} ${s.body}`)).toEqual([
      'PUT /a keep me',
      'PUT /b keep me',
      'PUT /c keep me',
    ])
  })

  it('fails clearly when a 307 needs a streamed body again', async () => {
    const { url } = await peer((req, res) => (req.url === '/a' ? redirect(res, 307, '/b') : res.end('x')))
    async function* body() {
      yield 'once'
    }
    expect(await code(new Client().fetch(`${url}/a`, { method: 'POST', body: body() }))).toBe('ERR_BODY_NOT_REPLAYABLE')
  })

  it('stops after max hops and detects loops', async () => {
    const { url } = await peer((req, res) => {
      const n = Number(req.url?.slice(2) ?? 0)
      if (req.url?.startsWith('/n')) return redirect(res, 302, `/n${n + 1}`)
      redirect(res, 302, '/loop')
    })
    const err = await new Client({ redirect: { max: 3 } }).fetch(`${url}/n0`).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(RedirectError)
    expect((err as HypersockError).code).toBe('ERR_TOO_MANY_REDIRECTS')
    expect(await code(new Client().fetch(`${url}/n0`))).toBe('ERR_TOO_MANY_REDIRECTS')
    expect(await code(new Client().fetch(`${url}/loop`))).toBe('ERR_TOO_MANY_REDIRECTS')
  })

  it('drops Authorization, Cookie and Proxy-Authorization across origins but keeps them on the same origin', async () => {
    const other = await peer((_req, res) => res.end('other'))
    const { url, seen } = await peer((req, res) => {
      if (req.url === '/same') return redirect(res, 302, '/landing')
      if (req.url === '/cross') return redirect(res, 302, `${other.url}/landing`)
      res.end('here')
    })
    const headers = {
      authorization: 'Bearer secret',
      cookie: 'sid=1',
      'proxy-authorization': 'Basic eA==',
      'x-keep': 'yes',
    }
    await (await new Client().fetch(`${url}/same`, { headers })).text()
    expect(seen[1]?.headers.authorization).toBe('Bearer secret')
    expect(seen[1]?.headers.cookie).toBe('sid=1')
    await (await new Client().fetch(`${url}/cross`, { headers })).text()
    const landed = other.seen[0]?.headers
    expect(landed?.authorization).toBeUndefined()
    expect(landed?.cookie).toBeUndefined()
    expect(landed?.['proxy-authorization']).toBeUndefined()
    expect(landed?.['x-keep']).toBe('yes')
  })

  it('refuses https -> http unless allowed', async () => {
    const ca = generateCertificate({ isCa: true })
    const cert = generateCertificate({ ca })
    const plain = await peer((_req, res) => res.end('plain'))
    const secure = await peer((_req, res) => redirect(res, 302, `${plain.url}/x`), cert)
    const err = await new Client({ tls: { ca: ca.cert } }).fetch(secure.url).catch((e: unknown) => e)
    expect(err).toBeInstanceOf(RedirectError)
    expect((err as HypersockError).code).toBe('ERR_REDIRECT_REFUSED')
    const res = await new Client({ tls: { ca: ca.cert }, redirect: { allowInsecure: true } }).fetch(secure.url)
    expect(await res.text()).toBe('plain')
  })

  it('returns the 3xx in manual mode and fails in error mode', async () => {
    const { url } = await peer((req, res) => (req.url === '/a' ? redirect(res, 301, '/b') : res.end('b')))
    const res = await new Client({ redirect: 'manual' }).fetch(`${url}/a`)
    expect(res.status).toBe(301)
    expect(res.headers.get('location')).toBe('/b')
    expect(await code(new Client({ redirect: 'error' }).fetch(`${url}/a`))).toBe('ERR_REDIRECT_REFUSED')
  })
})

describe('client retry', () => {
  it('retries 503 with backoff and reports the attempts', async () => {
    const { url, seen } = await peer((_req, res, seen) => {
      if (seen.length < 3) {
        res.writeHead(503)
        return res.end()
      }
      res.end('finally')
    })
    const res = await new Client({ retry: { attempts: 4, baseDelay: 5 } }).fetch(url)
    expect(await res.text()).toBe('finally')
    expect(res.attempts).toBe(3)
    expect(seen.length).toBe(3)
  })

  it('honours Retry-After as seconds and as an HTTP date, and gives up past maxRetryAfter', async () => {
    const { url } = await peer((req, res, seen) => {
      const mine = seen.filter((s) => s.url === req.url).length
      if (req.url === '/secs' && mine === 1) res.writeHead(429, { 'retry-after': '0' })
      else if (req.url === '/date' && mine === 1)
        res.writeHead(503, { 'retry-after': new Date(Date.now() - 1000).toUTCString() })
      else if (req.url === '/long') res.writeHead(503, { 'retry-after': '3600' })
      res.end(req.url)
    })
    const client = new Client({ retry: { attempts: 3, baseDelay: 5_000, maxRetryAfter: 10_000 } })
    const secs = await client.fetch(`${url}/secs`)
    expect([secs.status, secs.attempts]).toEqual([200, 2])
    const date = await client.fetch(`${url}/date`)
    expect([date.status, date.attempts]).toEqual([200, 2])
    const long = await client.fetch(`${url}/long`)
    expect([long.status, long.attempts]).toEqual([503, 1])
  })

  it('retries only idempotent methods by default', async () => {
    const { url, seen } = await peer((_req, res) => {
      res.writeHead(502)
      res.end()
    })
    const res = await new Client({ retry: { attempts: 3, baseDelay: 1 } }).fetch(url, { method: 'POST', body: 'x' })
    expect([res.status, res.attempts, seen.length]).toEqual([502, 1, 1])
    const allowed = await new Client({ retry: { attempts: 3, baseDelay: 1, methods: ['POST'] } }).fetch(url, {
      method: 'POST',
      body: 'x',
    })
    expect([allowed.status, allowed.attempts, seen.length]).toEqual([502, 3, 4])
  })

  it('retries connection resets, but never a streamed body', async () => {
    const { url, seen } = await peer((req, res, seen) => {
      if (seen.length <= 2) return req.socket.destroy()
      res.end('ok')
    })
    const res = await new Client({ retry: { attempts: 3, baseDelay: 1 } }).fetch(url)
    expect(await res.text()).toBe('ok')
    expect(seen.length).toBe(3)
    const before = seen.length
    seen.length = 0
    async function* body() {
      yield 'stream'
    }
    expect(before).toBe(3)
    const err = await code(
      new Client({ retry: { attempts: 3, baseDelay: 1 } }).fetch(url, { method: 'PUT', body: body() }),
    )
    expect(err).toBe('ECONNRESET')
    expect(seen.length).toBe(1)
  })

  it('reports the attempts on the error when every attempt fails', async () => {
    const { url, seen } = await peer((req) => req.socket.destroy())
    const client = new Client({ retry: { attempts: 3, baseDelay: 1 } })
    const err = (await client.fetch(url).catch((e: unknown) => e)) as HypersockError
    expect(err).toBeInstanceOf(ConnectionError)
    expect([err.code, err.attempts]).toEqual(['ECONNRESET', 3])
    // The first reset is also taken for a stale pooled connection and retried once at once.
    expect(seen.length).toBe(4)
    const viaRequest = (await client.request(`${url}/again`).catch((e: unknown) => e)) as HypersockError
    expect([viaRequest.code, viaRequest.attempts]).toEqual(['ECONNRESET', 3])
    const refused = `http://127.0.0.1:${await freePort()}/`
    const dead = (await client.fetch(refused).catch((e: unknown) => e)) as HypersockError
    expect([dead.code, dead.attempts]).toEqual(['ECONNREFUSED', 3])
    const single = (await new Client().fetch(refused).catch((e: unknown) => e)) as HypersockError
    expect([single.code, single.attempts]).toEqual(['ECONNREFUSED', 1])
    const bad = (await client.fetch('http://[::1').catch((e: unknown) => e)) as HypersockError
    expect([bad.code, bad.attempts]).toEqual(['ERR_INVALID_URL', 0])
  })

  it('reports the attempts on the response when every attempt answers 503', async () => {
    const { url, seen } = await peer((_req, res) => {
      res.writeHead(503)
      res.end('busy')
    })
    const res = await new Client({ retry: { attempts: 3, baseDelay: 1 } }).fetch(url)
    expect([res.status, res.attempts, seen.length, await res.text()]).toEqual([503, 3, 3, 'busy'])
  })

  it('does not retry without a retry option', async () => {
    const { url, seen } = await peer((_req, res) => {
      res.writeHead(503)
      res.end()
    })
    const res = await new Client().fetch(url)
    expect([res.status, res.attempts, seen.length]).toEqual([503, 1, 1])
  })

  it('lets a hook decide, with the attempt, status or error and the planned delay', async () => {
    const { url, seen } = await peer((_req, res, seen) => {
      res.writeHead(seen.length < 3 ? 400 : 200)
      res.end(String(seen.length))
    })
    const told: RetryContext[] = []
    const client = new Client({
      retry: {
        attempts: 5,
        baseDelay: 1,
        methods: ['GET'],
        shouldRetry: async (ctx) => {
          told.push(ctx)
          return ctx.status === 400
        },
      },
    })
    const res = await client.fetch(url)
    expect([res.status, res.attempts, seen.length]).toEqual([200, 3, 3])
    expect(told.map((c) => [c.attempt, c.status, c.willRetry, c.method])).toEqual([
      [1, 400, false, 'GET'],
      [2, 400, false, 'GET'],
    ])
    expect(told[0]?.delay).toBeGreaterThanOrEqual(0)
    // A hook can also stop a retry that the policy wanted, and sees connection errors.
    const dead = `http://127.0.0.1:${await freePort()}/`
    const errors: RetryContext[] = []
    const stop = new Client({
      retry: {
        attempts: 3,
        baseDelay: 1,
        shouldRetry: (ctx) => {
          errors.push(ctx)
          return false
        },
      },
    })
    expect(await code(stop.fetch(dead))).toBe('ECONNREFUSED')
    expect(errors.length).toBe(1)
    expect(errors[0]?.error?.code).toBe('ECONNREFUSED')
    expect(errors[0]?.willRetry).toBe(true)
  })
})

describe('per-request redirect, timeout and retry', () => {
  it("a request's redirect mode wins over the client's, also from a WHATWG Request", async () => {
    const { url } = await peer((req, res) => {
      if (req.url === '/from') redirect(res, 302, '/to')
      else res.end(`at ${req.url}`)
    })
    const following = new Client()
    const manual = await following.fetch(`${url}/from`, { redirect: 'manual' })
    expect([manual.status, manual.headers.get('location')]).toEqual([302, '/to'])
    await manual.text()
    expect(await code(following.fetch(`${url}/from`, { redirect: 'error' }))).toBe('ERR_REDIRECT_REFUSED')
    const viaRequest = await following.fetch(new Request(`${url}/from`, { redirect: 'manual' }))
    expect(viaRequest.status).toBe(302)
    await viaRequest.text()
    const manualClient = new Client({ redirect: 'manual' })
    expect((await manualClient.fetch(`${url}/from`)).status).toBe(302)
    const followed = await manualClient.fetch(`${url}/from`, { redirect: 'follow' })
    expect([followed.status, await followed.text()]).toEqual([200, 'at /to'])
    expect(await code(following.fetch(`${url}/from`, { redirect: 'sideways' } as never))).toBe('ERR_INVALID_ARG_VALUE')
  })

  it("a request's timeout wins over the client's", async () => {
    const { url } = await peer(() => {
      // Never answers; the connection is closed by the cleanup.
    })
    const err = await new Client({ timeout: 600_000 }).fetch(url, { timeout: 50 }).then(
      () => null,
      (e: unknown) => e as HypersockError & { phase?: string },
    )
    expect(err?.code).toBe('ETIMEDOUT')
    expect(err?.phase).toBe('request')
  })

  it("a request's retry attempts win over the client's", async () => {
    const { url, seen } = await peer((_req, res, all) => {
      res.writeHead(all.length === 3 ? 200 : 503)
      res.end(String(all.length))
    })
    const once = new Client()
    const res = await once.fetch(url, { retry: 3 })
    expect([res.status, res.attempts, await res.text()]).toEqual([200, 3, '3'])
    const retrying = new Client({ retry: { attempts: 5, baseDelay: 1 } })
    const first = await retrying.fetch(url, { retry: 1 })
    expect([first.status, first.attempts]).toEqual([503, 1])
    await first.text()
    expect(seen.length).toBe(4)
  })
})

// Differential tests: the same request shapes through Node's own fetch and through hypersock's,
// against one local hypersock server; the observable results must be the same. Where hypersock
// differs on purpose, DIFFERENCES says so (and docs/client.md lists it).
import { fetch as hfetch, type Server, serve } from 'hypersock'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

let base = ''
let server: Server | undefined

/** What hypersock does differently from Node's fetch, on purpose, and how the table accounts for it. */
const DIFFERENCES = {
  errors:
    "Failures are hypersock errors with a code (ConnectionError, RedirectError, AbortError, TimeoutError, ...) where Node's fetch throws TypeError('fetch failed') or a DOMException; the table compares only that both throw.",
  defaultHeaders:
    "Node's fetch adds accept, accept-language, sec-fetch-mode and user-agent; hypersock sends only accept-encoding (and what you set). The echo compares content-type and x-* headers.",
  cookies: 'A Client with a cookieJar stores and sends cookies across requests; Node’s fetch keeps none.',
  retries: 'A Client with retry resends idempotent requests that failed; Node’s fetch never does.',
} as const

beforeAll(async () => {
  server = await serve({
    async fetch(req) {
      const url = new URL(req.url)
      const [, route, arg] = url.pathname.split('/')
      if (route === 'echo') {
        const headers: Record<string, string> = {}
        for (const [k, v] of req.headers) if (k === 'content-type' || k.startsWith('x-')) headers[k] = v
        const type = headers['content-type']
        if (type?.startsWith('multipart/form-data')) headers['content-type'] = 'multipart/form-data; boundary=*'
        const body = await req.text()
        return Response.json({
          method: req.method,
          path: url.pathname + url.search,
          headers,
          body: type?.startsWith('multipart') ? body.replace(/-{2,}[\w-]+/g, '--*') : body,
        })
      }
      if (route === 'status') {
        const status = Number(arg)
        return new Response(status === 204 || status === 304 ? null : `status ${status}`, { status })
      }
      if (route === 'redirect') return new Response(null, { status: Number(arg), headers: { location: '/echo/after' } })
      if (route === 'headers') {
        const h = new Headers([
          ['set-cookie', 'a=1'],
          ['set-cookie', 'b=2'],
          ['x-multi', 'one'],
          ['x-multi', 'two'],
        ])
        return new Response('h', { headers: h })
      }
      if (route === 'big') return new Response('x'.repeat(300 * 1024))
      if (route === 'slow') return new Promise(() => {})
      return new Response('not found', { status: 404 })
    },
  })
  base = `http://127.0.0.1:${server.port}`
})
afterAll(() => server?.stop({ graceful: false }))

type Fetch = (input: string | Request, init?: RequestInit) => Promise<Response>
interface Shape {
  name: string
  input: () => string | Request
  init?: () => RequestInit
  /** Reads the body through a clone too. */
  clone?: boolean
  /** Both must throw (otherwise neither may). */
  throws?: boolean
}

const enc = new TextEncoder()
function stream(): ReadableStream<Uint8Array> {
  return new ReadableStream({
    start(c) {
      c.enqueue(enc.encode('chunk one, '))
      c.enqueue(enc.encode('chunk two'))
      c.close()
    },
  })
}
const form = () => {
  const f = new FormData()
  f.append('field', 'value')
  f.append('file', new Blob(['file body'], { type: 'text/plain' }), 'a.txt')
  return f
}

const bodies: Array<[string, () => BodyInit]> = [
  ['a string', () => 'hello'],
  ['a Uint8Array', () => enc.encode('bytes')],
  ['an ArrayBuffer', () => enc.encode('array buffer').buffer as ArrayBuffer],
  ['a DataView', () => new DataView(enc.encode('data view').buffer as ArrayBuffer)],
  ['URLSearchParams', () => new URLSearchParams({ a: '1', b: 'two words' })],
  ['a Blob with a type', () => new Blob(['blob'], { type: 'application/x-thing' })],
  ['FormData', form],
  ['a ReadableStream (duplex: half)', stream],
  ['an empty string', () => ''],
]

const shapes: Shape[] = [
  ...['GET', 'POST', 'PUT', 'PATCH', 'DELETE', 'OPTIONS', 'HEAD'].map((method) => ({
    name: `${method} without a body`,
    input: () => `${base}/echo/m?q=${method}`,
    init: () => ({ method }),
  })),
  ...bodies.flatMap(([what, body]) =>
    ['POST', 'PUT'].map((method) => ({
      name: `${method} with ${what}`,
      input: () => `${base}/echo/b`,
      init: () => ({ method, body: body(), duplex: 'half' }) as RequestInit,
    })),
  ),
  ...bodies
    .filter(([what]) => !what.includes('ReadableStream'))
    .map(([what, body]) => ({
      name: `a Request object with ${what}`,
      input: () => new Request(`${base}/echo/r`, { method: 'POST', body: body(), headers: { 'x-from': 'request' } }),
    })),
  {
    name: 'a Request object with init over it',
    input: () => new Request(`${base}/echo/r`, { method: 'POST', body: 'a', headers: { 'x-from': 'request' } }),
    init: () => ({ method: 'PUT', headers: { 'x-from': 'init' } }),
  },
  {
    name: 'headers as pairs with a repeated name',
    input: () => `${base}/echo/h`,
    init: () => ({
      headers: [
        ['x-rep', 'one'],
        ['x-rep', 'two'],
      ],
    }),
  },
  {
    name: 'headers as a Headers object',
    input: () => `${base}/echo/h`,
    init: () => ({ headers: new Headers({ 'x-a': 'b' }) }),
  },
  { name: 'headers as a record', input: () => `${base}/echo/h`, init: () => ({ headers: { 'X-Upper': 'V' } }) },
  ...[301, 302, 303, 307, 308].flatMap((status) =>
    (['GET', 'POST'] as const).map((method) => ({
      name: `${method} redirected by ${status}`,
      input: () => `${base}/redirect/${status}`,
      init: () => ({
        method,
        body: method === 'POST' ? 'payload' : undefined,
        headers: { 'content-type': 'text/plain' },
      }),
    })),
  ),
  ...[302, 307].map((status) => ({
    name: `redirect: 'manual' on ${status}`,
    input: () => `${base}/redirect/${status}`,
    init: () => ({ redirect: 'manual' as const }),
  })),
  ...[302, 308].map((status) => ({
    name: `redirect: 'error' on ${status}`,
    throws: true,
    input: () => `${base}/redirect/${status}`,
    init: () => ({ redirect: 'error' as const }),
  })),
  {
    name: 'a 307 with a stream body cannot be followed',
    throws: true,
    input: () => `${base}/redirect/307`,
    init: () => ({ method: 'POST', body: stream(), duplex: 'half' }) as RequestInit,
  },
  ...[200, 201, 204, 400, 404, 418, 500, 503].map((status) => ({
    name: `status ${status}`,
    input: () => `${base}/status/${status}`,
  })),
  { name: 'repeated response headers and set-cookie', input: () => `${base}/headers` },
  { name: 'a body over the inline limit', input: () => `${base}/big` },
  { name: 'clone() of a small body', input: () => `${base}/echo/c`, clone: true },
  { name: 'clone() of a large body', input: () => `${base}/big`, clone: true },
  {
    name: 'AbortSignal.timeout on a response that never comes',
    throws: true,
    input: () => `${base}/slow`,
    init: () => ({ signal: AbortSignal.timeout(50) }),
  },
  {
    name: 'an already aborted signal',
    throws: true,
    input: () => `${base}/echo/x`,
    init: () => {
      const c = new AbortController()
      c.abort()
      return { signal: c.signal }
    },
  },
  { name: 'a refused connection', throws: true, input: () => 'http://127.0.0.1:1/' },
  { name: 'an invalid URL', throws: true, input: () => 'http://exa mple.com/' },
  { name: 'a GET with a body', throws: true, input: () => `${base}/echo/x`, init: () => ({ body: 'no' }) },
]

/** Everything a caller can observe of the result, errors as "threw". */
async function observe(f: Fetch, shape: Shape): Promise<unknown> {
  let res: Response
  try {
    res = await f(shape.input(), shape.init?.())
  } catch {
    return { threw: true }
  }
  const headers: Record<string, string | string[]> = {}
  for (const name of ['content-type', 'location', 'x-multi']) {
    const v = res.headers.get(name)
    if (v !== null) headers[name] = v
  }
  const cookies = res.headers.getSetCookie()
  if (cookies.length) headers['set-cookie'] = cookies
  const out: Record<string, unknown> = {
    status: res.status,
    statusText: res.statusText,
    ok: res.ok,
    redirected: res.redirected,
    type: res.type,
    url: res.url,
    headers,
    bodyUsedBefore: res.bodyUsed,
  }
  const copy = shape.clone ? res.clone() : null
  out.body = await res.text()
  out.bodyUsedAfter = res.bodyUsed
  if (copy) out.cloneBody = await copy.text()
  let again = 'no error'
  try {
    await res.text()
  } catch (e) {
    again = (e as Error).name
  }
  out.readAgain = again
  return out
}

describe('fetch: hypersock against Node', () => {
  it('covers at least 50 request shapes', () => {
    expect(shapes.length).toBeGreaterThanOrEqual(50)
    expect(Object.keys(DIFFERENCES).length).toBeGreaterThan(0)
  })
  for (const shape of shapes) {
    it(shape.name, async () => {
      const node = await observe(globalThis.fetch as Fetch, shape)
      const ours = await observe(hfetch as unknown as Fetch, shape)
      expect(ours).toEqual(node)
      expect((node as { threw?: boolean }).threw === true).toBe(shape.throws === true)
    })
  }
})

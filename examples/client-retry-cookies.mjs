// Client with retry and cookies: a local server that answers 503 twice and then succeeds, setting
// a session cookie. A `Client` with `retry` rides out the failures by itself (one `fetch`, three
// attempts, `beforeRetry` tells each one) and its `CookieJar` keeps the cookie, which the next
// request sends back.
//
// Run: node examples/client-retry-cookies.mjs   (from the repository root; loopback only)
import { Client, CookieJar, serve } from 'hypersock'

let tries = 0
const server = await serve({
  port: 0,
  hostname: '127.0.0.1',
  fetch(req) {
    if (req.path === '/login') {
      tries++
      // `Retry-After: 0` asks the client to try again at once instead of backing off.
      if (tries <= 2) return { status: 503, headers: { 'retry-after': '0' }, body: `busy (try ${tries})` }
      return { status: 200, headers: { 'set-cookie': 'session=s3cr3t; Path=/; HttpOnly' }, body: 'welcome' }
    }
    if (req.path === '/me') return `you are session ${req.cookies.get('session') ?? '(none)'}`
    return { status: 404 }
  },
})
console.log(`server listening on ${server.url}`)

const jar = new CookieJar()
const client = new Client({
  retry: { attempts: 3, baseDelay: 50, maxDelay: 500 },
  cookieJar: jar,
  hooks: {
    beforeRetry: [(ctx) => console.log(`attempt ${ctx.attempt} got ${ctx.status}: retrying in ${ctx.delay} ms`)],
  },
})

const login = await client.fetch(new URL('/login', server.url))
console.log(`login: ${login.status} ${await login.text()} after ${login.attempts} attempts`)
console.log(`cookie jar now holds: ${jar.getCookieString(server.url.href)}`)

const me = await client.fetch(new URL('/me', server.url))
console.log(`me: ${me.status} ${await me.text()}`)

await server.stop()
if (login.attempts !== 3 || tries !== 3) throw new Error('expected three attempts')
console.log('done: 2 failures retried, cookie stored and sent back')

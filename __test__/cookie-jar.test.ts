// The cookie jar: the 222 http-state parser cases and the cookie-date cases kept by tough-cookie
// (copied into __test__/fixtures/cookies with their licence), then the jar used by the client across redirects.
import { once } from 'node:events'
import { readFileSync } from 'node:fs'
import http from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Client, CookieJar } from 'hypersock'
import { afterEach, describe, expect, it } from 'vitest'

const dir = join(__dirname, 'fixtures', 'cookies')
const load = <T>(name: string): T => JSON.parse(readFileSync(join(dir, name), 'utf8')) as T

interface ParserCase {
  test: string
  received: string[]
  'sent-to'?: string
  sent: { name: string; value: string }[]
}
interface DateCase {
  test: string
  expected: string | null
}

const parserCases = load<ParserCase[]>('parser.json')
const PINNED = Date.UTC(2010, 0, 1)

describe('cookie jar: http-state parser cases', () => {
  it('has all 222 cases', () => {
    expect(parserCases.length).toBe(222)
  })

  it.each(parserCases.map((c) => [c.test, c] as const))('%s', (_name, c) => {
    const jar = new CookieJar({ clock: () => PINNED })
    const from = `http://home.example.org/cookie-parser?${c.test}`
    for (const header of c.received) jar.setCookie(header, from)
    const to = c['sent-to']
      ? new URL(c['sent-to'], 'http://home.example.org').href
      : `http://home.example.org/cookie-parser-result?${c.test}`
    const sent = jar.getCookies(to).map((k) => ({ name: k.name, value: k.value }))
    expect(sent).toEqual(c.sent)
  })
})

describe('cookie jar: cookie dates (RFC 6265 5.1.1)', () => {
  const cases = [...load<DateCase[]>('dates-examples.json'), ...load<DateCase[]>('dates-bsd-examples.json')]
  it.each(cases.map((c) => [c.test, c] as const))('%s', (_name, c) => {
    const parsed = CookieJar.parseDate(c.test)
    expect(parsed === null ? null : parsed.toUTCString()).toBe(c.expected)
  })
})

describe('cookie jar API', () => {
  it('gets, sets, lists, deletes, clears, saves to a file and loads back', async () => {
    const jar = new CookieJar()
    expect(
      jar.setCookie('a=1; Path=/; Max-Age=3600; SameSite=Lax; HttpOnly', 'https://shop.example.com/cart'),
    ).toMatchObject({
      name: 'a',
      domain: 'shop.example.com',
      hostOnly: true,
      httpOnly: true,
      sameSite: 'lax',
    })
    jar.setCookie('b=2; Domain=example.com; Secure; Expires=Wed, 09 Jun 2100 10:18:14 GMT', 'https://shop.example.com/')
    jar.setCookie('session=s', 'https://shop.example.com/')
    expect(jar.setCookie('bad=1; Domain=co.uk', 'https://shop.example.co.uk/')).toBeNull()
    expect(jar.setCookie('bad=1; Domain=other.com', 'https://shop.example.com/')).toBeNull()
    expect(jar.getCookieString('https://shop.example.com/cart')).toBe('a=1; b=2; session=s')
    expect(jar.getCookieString('http://www.example.com/')).toBe('')
    expect(jar.getCookieString('https://www.example.com/')).toBe('b=2')
    expect(jar.list().length).toBe(3)
    const file = join(tmpdir(), `hypersock-jar-${process.pid}.json`)
    await jar.save(file)
    const restored = await CookieJar.fromFile(file)
    expect(
      restored
        .list()
        .map((c) => c.name)
        .sort(),
    ).toEqual(['a', 'b'])
    expect(
      restored
        .list()
        .find((c) => c.name === 'b')
        ?.expires?.getUTCFullYear(),
    ).toBe(2100)
    expect(jar.delete('example.com', 'b')).toBe(1)
    expect(jar.clear()).toBe(2)
    expect(jar.list()).toEqual([])
  })
})

describe('cookie jar with the client', () => {
  const servers: http.Server[] = []
  afterEach(() => {
    for (const s of servers.splice(0)) {
      s.closeAllConnections()
      s.close()
    }
  })

  it('stores cookies from every hop of a redirect chain and sends them on the next hops', async () => {
    const seen: { url: string; cookie: string | undefined }[] = []
    const server = http.createServer((req, res) => {
      seen.push({ url: req.url ?? '', cookie: req.headers.cookie })
      if (req.url === '/login') {
        res.writeHead(302, { location: '/account', 'set-cookie': ['sid=xyz; Path=/; HttpOnly', 'pref=dark'] })
        return res.end()
      }
      if (req.url === '/account') {
        res.writeHead(303, { location: '/home', 'set-cookie': 'seen=1; Max-Age=60' })
        return res.end()
      }
      res.end('home')
    })
    server.listen(0, '127.0.0.1')
    await once(server, 'listening')
    servers.push(server)
    const base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`
    const jar = new CookieJar()
    const client = new Client({ cookieJar: jar })
    const res = await client.fetch(`${base}/login`, { method: 'POST', body: 'user=me' })
    expect(await res.text()).toBe('home')
    expect(seen).toEqual([
      { url: '/login', cookie: undefined },
      { url: '/account', cookie: 'sid=xyz; pref=dark' },
      { url: '/home', cookie: 'sid=xyz; pref=dark; seen=1' },
    ])
    expect(jar.getCookieString(`${base}/`)).toBe('sid=xyz; pref=dark; seen=1')
    // A second client shares the jar.
    await (await new Client({ cookieJar: jar }).fetch(`${base}/again`)).text()
    expect(seen.at(-1)?.cookie).toBe('sid=xyz; pref=dark; seen=1')
  })
})

describe('the cookie jar keeps browser limits and the Secure rules', () => {
  it('refuses oversized cookies and caps a site and the jar', () => {
    const jar = new CookieJar()
    expect(jar.setCookie(`big=${'v'.repeat(4096)}`, 'https://example.com/')).toBeNull()
    expect(jar.setCookie(`ok=${'v'.repeat(4000)}`, 'https://example.com/')).not.toBeNull()
    for (let i = 0; i < 300; i++) jar.setCookie(`c${i}=1; Domain=example.com`, `https://a${i % 5}.example.com/`)
    const names = jar.getCookies('https://www.example.com/').map((c) => c.name)
    expect(names.length).toBe(180)
    expect(names).toContain('c299')
    expect(names).not.toContain('c119')
    expect(jar.getCookieString('https://www.example.com/').length).toBeLessThan(180 * 12)
    for (let site = 0; site < 40; site++) {
      for (let i = 0; i < 100; i++) jar.setCookie(`k${i}=1`, `https://site${site}.com/`)
    }
    expect(jar.getCookies('https://site0.com/')).toEqual([])
    expect(jar.getCookies('https://site39.com/').length).toBe(100)
  })

  it('stores Secure cookies only from secure origins and lets no http response overwrite one', () => {
    const jar = new CookieJar()
    expect(jar.setCookie('s=1; Secure', 'http://example.com/')).toBeNull()
    expect(jar.setCookie('s=1; Secure', 'https://example.com/')).not.toBeNull()
    expect(jar.setCookie('s=evil', 'http://example.com/')).toBeNull()
    expect(jar.setCookie('s=evil; Domain=example.com', 'http://sub.example.com/')).toBeNull()
    expect(jar.getCookieString('https://example.com/')).toBe('s=1')
    expect(jar.getCookieString('http://example.com/')).toBe('')
    // Loopback counts as secure, as in browsers.
    expect(jar.setCookie('dev=1; Secure', 'http://127.0.0.1:3000/')).not.toBeNull()
    expect(jar.getCookieString('http://localhost:3000/')).toBe('')
    expect(jar.getCookieString('http://127.0.0.1:3000/')).toBe('dev=1')
  })
})

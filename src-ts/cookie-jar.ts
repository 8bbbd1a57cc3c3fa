import { readFile, rename, writeFile } from 'node:fs/promises'
import { fromNative } from './errors.js'
import { type Binding, native } from './native.js'
import { checkOptions, optionKeys } from './validate.js'

/** A stored cookie. */
export interface Cookie {
  /** The cookie's name. */
  name: string
  /** The cookie's value. */
  value: string
  /** Domain, lower case, without a leading dot. */
  domain: string
  /** Path the cookie is sent for (and below it). */
  path: string
  /** Sent only to exactly `domain` (no `Domain` attribute was given). */
  hostOnly: boolean
  /** Sent only over https. */
  secure: boolean
  /** Set with `HttpOnly`: not for scripts (the jar still sends it). */
  httpOnly: boolean
  /** The `SameSite` attribute, lower case; null when it was not given. */
  sameSite: 'strict' | 'lax' | 'none' | null
  /** Expiry; null for a session cookie. */
  expires: Date | null
  /** When the cookie was first stored. */
  creation: Date
}

/** Options of a {@link CookieJar}. */
export interface CookieJarOptions {
  /**
   * The clock of the jar's own methods (`setCookie`, `getCookies`, ...), in ms since the epoch.
   * Default `Date.now`. Requests made by a client always use the real time.
   */
  clock?: () => number
}

/** Options of {@link CookieJar.save}. */
export interface SaveOptions {
  /** Save session cookies (those without Expires/Max-Age) too. Default false. */
  includeSession?: boolean
}

const JAR_KEYS = optionKeys<CookieJarOptions>({ clock: true })
const SAVE_KEYS = optionKeys<SaveOptions>({ includeSession: true })

const natives = new WeakMap<CookieJar, Binding.BindingCookieJar>()

/** @internal The native jar behind a CookieJar. */
export function nativeJar(jar: CookieJar): Binding.BindingCookieJar {
  const n = natives.get(jar)
  if (!n) throw new TypeError('cookieJar must be a hypersock CookieJar')
  return n
}

function toCookie(c: Binding.BindingCookie): Cookie {
  return {
    name: c.name,
    value: c.value,
    domain: c.domain,
    path: c.path,
    hostOnly: c.hostOnly,
    secure: c.secure,
    httpOnly: c.httpOnly,
    sameSite: (c.sameSite as Cookie['sameSite']) ?? null,
    expires: c.expires === null || c.expires === undefined ? null : new Date(c.expires),
    creation: new Date(c.creation),
  }
}

function call<T>(f: () => T): T {
  try {
    return f()
  } catch (err) {
    throw fromNative(err)
  }
}

/**
 * An RFC 6265 cookie jar (domain and path matching, host-only cookies, Max-Age/Expires, Secure,
 * HttpOnly, SameSite, public-suffix rejection), kept in Rust and shared safely by every client
 * that uses it: pass it as `new Client({ cookieJar })` and cookies are stored and sent on every
 * request, redirects included.
 */
export class CookieJar {
  #clock: () => number

  /** Makes an empty jar. */
  constructor(options: CookieJarOptions = {}) {
    checkOptions('new CookieJar()', options, JAR_KEYS)
    natives.set(this, new native.BindingCookieJar())
    this.#clock = options.clock ?? Date.now
  }

  /** Stores a `Set-Cookie` value as if received from `url`. Returns the cookie, or null when the rules ignore it. */
  setCookie(setCookie: string, url: string | URL): Cookie | null {
    const c = call(() => nativeJar(this).setCookie(setCookie, String(url), this.#clock()))
    return c ? toCookie(c) : null
  }

  /** The cookies a request to `url` would send, in the order they are sent. */
  getCookies(url: string | URL): Cookie[] {
    return call(() => nativeJar(this).getCookies(String(url), this.#clock())).map(toCookie)
  }

  /** The `Cookie` header a request to `url` would send (`''` when none). */
  getCookieString(url: string | URL): string {
    return call(() => nativeJar(this).getCookieHeader(String(url), this.#clock())) ?? ''
  }

  /** Every cookie that has not expired. */
  list(): Cookie[] {
    return nativeJar(this).list(this.#clock()).map(toCookie)
  }

  /** Removes the cookies of `domain` (and its subdomains), optionally only those called `name`. Returns how many. */
  delete(domain: string, name?: string): number {
    return nativeJar(this).remove(domain, name)
  }

  /** Removes every cookie. Returns how many. */
  clear(): number {
    return nativeJar(this).remove(null, null)
  }

  /** The cookies as JSON text, for {@link CookieJar.deserialize}. */
  serialize(options: SaveOptions = {}): string {
    return nativeJar(this).toJson(!!options.includeSession, this.#clock())
  }

  /** Adds the cookies of {@link CookieJar.serialize} output (expired ones are dropped). Returns how many. */
  deserialize(json: string): number {
    return call(() => nativeJar(this).loadJson(json, this.#clock()))
  }

  /** Writes the cookies to a file (atomically: a temporary file, then a rename). */
  async save(path: string, options: SaveOptions = {}): Promise<void> {
    checkOptions('cookieJar.save()', options, SAVE_KEYS)
    const tmp = `${path}.${process.pid}.tmp`
    await writeFile(tmp, this.serialize(options), { mode: 0o600 })
    await rename(tmp, path)
  }

  /** Adds the cookies saved in a file. Returns how many. */
  async load(path: string): Promise<number> {
    return this.deserialize(await readFile(path, 'utf8'))
  }

  /** Makes a jar from a file written by {@link CookieJar.save}. */
  static async fromFile(path: string, options?: CookieJarOptions): Promise<CookieJar> {
    const jar = new CookieJar(options)
    await jar.load(path)
    return jar
  }

  /** Parses a cookie date (RFC 6265 section 5.1.1, as in `Expires`); null when it is not one. */
  static parseDate(value: string): Date | null {
    const ms = native.parseCookieDateNative(value)
    return ms === null || ms === undefined ? null : new Date(ms)
  }
}

// Header lists, the TS side of crates/node/src/wire/headers.rs: every header list crosses between
// JS and the addon as one flat `[name, value, name, value, ...]` array of strings, in both
// directions (requests and responses of the client and the server, WebSocket handshakes, SSE).
// The server's incoming requests carry theirs inside the request batch (./request.ts).

/**
 * Builds a `Headers` from a flat `[name, value, ...]` list, keeping order and repeats. A value
 * with characters above U+00FF (the addon decodes the peer's bytes as UTF-8 when they are UTF-8,
 * as Latin-1 when not), which a `Headers` cannot hold, is taken as its UTF-8 bytes read one by
 * one (Latin-1), as WHATWG fetch reads them: either way every byte the peer sent is kept.
 */
export function headersFromFlat(flat: string[]): Headers {
  const headers = new Headers()
  for (let i = 0; i + 1 < flat.length; i += 2) {
    const value = flat[i + 1] as string
    headers.append(flat[i] as string, /[^\0-\xff]/.test(value) ? Buffer.from(value, 'utf8').toString('latin1') : value)
  }
  return headers
}

/** Flattens any `HeadersInit` into `[name, value, ...]`, keeping every `Set-Cookie` apart. */
export function flattenHeaders(init: HeadersInit | undefined | null): string[] {
  const out: string[] = []
  if (!init) return out
  if (init instanceof Headers) {
    for (const [name, value] of init) {
      if (name !== 'set-cookie') out.push(name, value)
    }
    for (const cookie of init.getSetCookie()) out.push('set-cookie', cookie)
    return out
  }
  if (Array.isArray(init)) {
    for (const pair of init) {
      if (pair.length !== 2) throw new TypeError('header pairs must have two elements')
      out.push(String(pair[0]), String(pair[1]))
    }
    return out
  }
  for (const [name, value] of Object.entries(init)) {
    if (Array.isArray(value)) for (const v of value) out.push(name, String(v))
    else if (value !== undefined) out.push(name, String(value))
  }
  return out
}

/** True when the flat list has a header called `name` (lower-case). */
export function hasHeader(flat: string[], name: string): boolean {
  for (let i = 0; i < flat.length; i += 2) if ((flat[i] as string).toLowerCase() === name) return true
  return false
}

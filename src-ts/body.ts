// Conversions between the body types users pass and the bytes that cross into Rust.

/** Body types accepted by `fetch` and by server responses. */
export type BodyInit = string | Uint8Array | ArrayBuffer | ArrayBufferView | URLSearchParams | null | undefined

const encoder = new TextEncoder()

/** Bytes (or a string, which the addon encodes as UTF-8) and the default content type of a body. */
export function encodeBody(body: BodyInit): { data: string | Uint8Array | null; type: string | null } {
  if (body === null || body === undefined) return { data: null, type: null }
  if (typeof body === 'string') return { data: body, type: 'text/plain;charset=UTF-8' }
  if (body instanceof Uint8Array) return { data: body, type: null }
  if (body instanceof ArrayBuffer) return { data: new Uint8Array(body), type: null }
  if (ArrayBuffer.isView(body)) {
    return { data: new Uint8Array(body.buffer, body.byteOffset, body.byteLength), type: null }
  }
  if (body instanceof URLSearchParams) {
    return { data: body.toString(), type: 'application/x-www-form-urlencoded;charset=UTF-8' }
  }
  throw new TypeError(`unsupported body type: ${Object.prototype.toString.call(body)}`)
}

/** UTF-8 bytes of a string body, for the paths that need bytes. */
export function toBytes(data: string | Uint8Array | null): Uint8Array | null {
  return typeof data === 'string' ? encoder.encode(data) : data
}

/**
 * Builds a `Headers` from a flat `[name, value, ...]` list, keeping order and repeats. A value
 * with characters above U+00FF (the addon decodes the peer's bytes as UTF-8), which a `Headers`
 * cannot hold, is taken as its UTF-8 bytes read one by one (Latin-1), as WHATWG fetch reads them.
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

/** The chunks of a web `ReadableStream`, as an async iterable (releasing the reader at the end). */
export async function* readStream<T>(stream: ReadableStream<T>): AsyncGenerator<T> {
  const reader = stream.getReader()
  try {
    for (;;) {
      const { done, value } = await reader.read()
      if (done) return
      yield value
    }
  } finally {
    reader.releaseLock()
  }
}

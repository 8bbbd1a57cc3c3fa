// The request batch, the TS side of crates/node/src/wire/request.rs (`encode_request`): the
// layout is described there. `decodeRequests` splits a batch into records; `RequestRecord` reads
// one record's fields, lazily, so an unread header list, address or body costs nothing.
// `ServerRequest` (server-request.ts) is a `RequestRecord` with the public API on top.

import { native } from '../native.js'
import { type Batch, u16, u32 } from './bytes.js'

/** Body kinds (flags bits 0-1). */
export const BODY_EMPTY = 0
export const BODY_FULL = 1
export const BODY_STREAM = 2
/** Code `n` is `METHODS[n]`; 0 means the name follows in the record. */
const METHODS = ['', ...native.requestMethods()]
const VERSIONS = ['1.1', '1.0', '2', '1.1']
const FLAG_UPGRADE = 0x10
const FLAG_TLS = 0x20
/** Bit of the method code byte: a route section follows the target. */
const ROUTED = 0x80
/** The shortest record: length, id, method code, flags, header count, port. */
const MIN_RECORD = 14
/** Characters a `Headers` value (a ByteString) cannot hold. */
const NOT_BYTE_STRING = /[^\0-\xff]/

/**
 * Calls `each` with the offset of every record of `batch`, in order. A record that does not fit
 * the batch (which the addon never writes) throws instead of being read past or looped on.
 */
export function decodeRequests(batch: Buffer, each: (at: number) => void): void {
  let o = 0
  while (o < batch.length) {
    const len = o + 4 <= batch.length ? u32(batch, o) : 0
    if (len < MIN_RECORD || len > batch.length - o) {
      throw new Error(`hypersock: corrupt request batch (a record of ${len} bytes at ${o} of ${batch.length})`)
    }
    each(o)
    o += len
  }
}

function u16be(b: Buffer, o: number): number {
  return ((b[o] as number) << 8) | (b[o + 1] as number)
}

/** The text form of an IPv4 (`family` 1) or IPv6 (2) address at `o`, as node:net writes it. */
function ipString(b: Buffer, o: number, family: number): string {
  if (family === 1) return `${b[o]}.${b[o + 1]}.${b[o + 2]}.${b[o + 3]}`
  if (family !== 2) return ''
  const groups: string[] = []
  for (let i = 0; i < 16; i += 2) groups.push(u16be(b, o + i).toString(16))
  // IPv4-mapped addresses read as IPv4, like node:net.
  if (groups.slice(0, 5).every((g) => g === '0') && groups[5] === 'ffff') return ipString(b, o + 12, 1)
  // The longest run of zero groups becomes "::" (RFC 5952).
  let best = -1
  let bestLen = 1
  for (let i = 0; i < 8; ) {
    if (groups[i] !== '0') {
      i++
      continue
    }
    let j = i
    while (j < 8 && groups[j] === '0') j++
    if (j - i > bestLen) {
      best = i
      bestLen = j - i
    }
    i = j
  }
  if (best < 0) return groups.join(':')
  return `${groups.slice(0, best).join(':')}::${groups.slice(best + bestLen).join(':')}`
}

/** One record of a request batch: the fixed fields read at once, the rest when asked for. */
export class RequestRecord {
  /** @internal The request's id at its server. */
  readonly id: number
  #batch: Batch
  #flags: number
  #count: number
  #method: string
  #targetAt: number
  #headersAt: number
  #remoteAt: number
  #tail = -1
  /** Offset of the route section, or -1 when the request matched no handler route. */
  #routeAt: number

  /** @internal */
  constructor(batch: Buffer, at: number) {
    this.#batch = batch as Batch
    this.id = u32(batch, at + 4)
    const byte = batch[at + 8] as number
    const code = byte & ~ROUTED
    const flags = batch[at + 9] as number
    this.#flags = flags
    this.#count = u16(batch, at + 10)
    this.#remoteAt = at + 12
    let o = at + 14 + (flags >> 6 === 1 ? 4 : flags >> 6 === 2 ? 16 : 0)
    if (code === 0) {
      const n = batch[o] as number
      this.#method = (batch as Batch).latin1Slice(o + 1, o + 1 + n)
      o += 1 + n
    } else {
      this.#method = METHODS[code] as string
    }
    this.#targetAt = o
    o += 4 + u32(batch, o)
    if (byte & ROUTED) {
      this.#routeAt = o
      const count = u16(batch, o + 4)
      o += 6
      for (let i = 0; i < count; i++) {
        o += 2 + u16(batch, o)
        o += 4 + u32(batch, o)
      }
    } else {
      this.#routeAt = -1
    }
    this.#headersAt = o
  }

  /** @internal The id of the handler route the request matched, or -1. */
  get routeId(): number {
    return this.#routeAt < 0 ? -1 : u32(this.#batch, this.#routeAt)
  }

  /** @internal The route's captured parameters, decoded, in pattern order. */
  protected readParams(): Record<string, string> {
    const params: Record<string, string> = Object.create(null)
    if (this.#routeAt < 0) return params
    const b = this.#batch
    const count = u16(b, this.#routeAt + 4)
    let o = this.#routeAt + 6
    for (let i = 0; i < count; i++) {
      const n = u16(b, o)
      const name = b.utf8Slice(o + 2, o + 2 + n)
      o += 2 + n
      const v = u32(b, o)
      params[name] = b.utf8Slice(o + 4, o + 4 + v)
      o += 4 + v
    }
    return params
  }

  /** The request method. */
  get method(): string {
    return this.#method
  }

  /** True when the client asked to switch protocols (an `Upgrade` header, HTTP/1.1). */
  get canUpgrade(): boolean {
    return (this.#flags & FLAG_UPGRADE) !== 0
  }

  /** `1.0`, `1.1` or `2`. */
  get httpVersion(): string {
    return VERSIONS[(this.#flags >> 2) & 3] as string
  }

  /** The client's IP address (empty on a unix socket). */
  get remoteAddress(): string {
    return ipString(this.#batch, this.#remoteAt + 2, this.#flags >> 6)
  }

  /** The client's port (0 on a unix socket). */
  get remotePort(): number {
    return u16(this.#batch, this.#remoteAt)
  }

  /** @internal `BODY_EMPTY`, `BODY_FULL` or `BODY_STREAM`. */
  protected get bodyKind(): number {
    return this.#flags & 3
  }

  /** @internal The request target as sent (UTF-8: the addon checked it). */
  protected readTarget(): string {
    const o = this.#targetAt
    return this.#batch.utf8Slice(o + 4, o + 4 + u32(this.#batch, o))
  }

  /**
   * @internal The header fields, in order with repeats. Values read as UTF-8, or byte for byte
   * (Latin-1, as WHATWG fetch reads them all) when that gives characters above U+00FF, which a
   * `Headers` cannot hold.
   */
  protected readHeaders(): Headers {
    const headers = new Headers()
    const b = this.#batch
    let o = this.#headersAt
    for (let i = 0; i < this.#count; i++) {
      const n = u16(b, o)
      const name = b.latin1Slice(o + 2, o + 2 + n)
      o += 2 + n
      const v = u32(b, o)
      let value = b.utf8Slice(o + 4, o + 4 + v)
      if (NOT_BYTE_STRING.test(value)) value = b.latin1Slice(o + 4, o + 4 + v)
      headers.append(name, value)
      o += 4 + v
    }
    this.#tail = o
    return headers
  }

  /** Offset just past the header block (where the TLS details and the body start). */
  #afterHeaders(): number {
    if (this.#tail < 0) {
      const b = this.#batch
      let o = this.#headersAt
      for (let i = 0; i < this.#count; i++) {
        o += 2 + u16(b, o)
        o += 4 + u32(b, o)
      }
      this.#tail = o
    }
    return this.#tail
  }

  /** @internal The TLS details as JSON (`ConnTls::to_json`), or null on plain HTTP. */
  protected readTlsJson(): string | null {
    if (!(this.#flags & FLAG_TLS)) return null
    const o = this.#afterHeaders()
    return this.#batch.utf8Slice(o + 4, o + 4 + u32(this.#batch, o))
  }

  /** @internal The whole body carried in the record (`BODY_FULL`). */
  protected readWholeBody(): Buffer {
    let o = this.#afterHeaders()
    if (this.#flags & FLAG_TLS) o += 4 + u32(this.#batch, o)
    return this.#batch.subarray(o + 4, o + 4 + u32(this.#batch, o))
  }
}

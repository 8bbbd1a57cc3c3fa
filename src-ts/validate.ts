// Validation shared by the public API: option objects (unknown keys throw, with a did-you-mean)
// and numeric options.
import { InvalidArgumentError } from './errors.js'

/** The largest value of a u32 option (milliseconds, counts). */
export const U32 = 0xffffffff

/**
 * `value` as an integer from 0 to `max`, or undefined when not given (the engine's default then
 * applies: defaults live in crates/core's `Default` impls); throws `ERR_INVALID_ARG_VALUE` otherwise.
 */
export function checkInteger(
  name: string,
  value: number | undefined,
  max = Number.MAX_SAFE_INTEGER,
): number | undefined {
  if (value === undefined) return undefined
  if (!Number.isSafeInteger(value) || value < 0 || value > max) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `${name} must be an integer from 0 to ${max}`)
  }
  return value
}

function editDistance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0] as number
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j] as number
      row[j] = Math.min(cur + 1, (row[j - 1] as number) + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = cur
    }
  }
  return row[b.length] as number
}

/** The known name nearest to `key`, for a did-you-mean. */
export function nearest(key: string, known: string[]): string | undefined {
  let best: string | undefined
  let bestDistance = Number.POSITIVE_INFINITY
  for (const k of known) {
    const d = editDistance(key.toLowerCase(), k.toLowerCase())
    if (d < bestDistance) {
      best = k
      bestDistance = d
    }
  }
  return bestDistance <= Math.max(2, Math.floor(key.length / 3)) ? best : undefined
}

/** Every key of `T`, each `true`: a list of keys the compiler checks against `T`. */
export type KeyRecord<T> = { [K in keyof Required<T>]: true }

/**
 * The keys of an options type, written out once and checked by the compiler against the type
 * (a key missing from the list, or one the type does not have, fails the build).
 */
export function optionKeys<T>(keys: KeyRecord<T>): ReadonlySet<string> {
  return new Set(Object.keys(keys))
}

/** What other libraries call some options, for the did-you-mean (`ws`, undici, node-fetch, ioredis, Bun). */
const OTHER_NAMES: Record<string, string[]> = {
  compression: ['perMessageDeflate', 'permessageDeflate', 'deflate'],
  maxMessageSize: ['maxPayload', 'maxPayloadLength'],
  maxBodySize: ['maxRequestBodySize', 'bodyLimit'],
  idleTimeout: ['keepAliveTimeout'],
  poolIdleTimeout: ['keepAliveTimeout', 'keepAliveMaxTimeout'],
  http2: ['allowH2'],
  redirect: ['maxRedirections', 'followRedirects', 'maxRedirects', 'follow'],
  maxConnectionsPerHost: ['connections', 'maxSockets'],
  maxResponseSize: ['maxContentLength', 'size'],
  headersTimeout: ['headerTimeout'],
  hostname: ['host'],
  allowedOrigins: ['origins', 'verifyClient'],
  maxConnections: ['maxClients'],
  handshakeTimeout: ['openTimeout'],
  socketPath: ['unix'],
  unix: ['socketPath', 'path'],
  servername: ['serverName'],
  serverName: ['servername'],
  maxIdlePerHost: ['keepAliveMaxIdle', 'maxFreeSockets'],
  tls: ['ssl', 'https', 'connect', 'rejectUnauthorized', 'ca', 'cert', 'key', 'checkServerIdentity'],
  url: ['host', 'port'],
}

/**
 * Throws `ERR_INVALID_ARG_VALUE` when `options` has a key outside `known`, naming it and, when
 * one is close (by spelling, or by what other libraries call it), the right one. `where` says
 * which options object, e.g. `serve()`.
 */
export function checkOptions(where: string, options: unknown, known: ReadonlySet<string>): void {
  if (options === undefined || options === null) return
  if (typeof options !== 'object') {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `${where}: options must be an object`)
  }
  for (const key in options) {
    if (known.has(key) || !Object.hasOwn(options, key)) continue
    let hint: string | undefined
    for (const [ours, theirs] of Object.entries(OTHER_NAMES)) {
      if (known.has(ours) && theirs.includes(key)) hint = ours
    }
    hint ??= nearest(key, [...known])
    throw new InvalidArgumentError(
      'ERR_INVALID_ARG_VALUE',
      `${where}: unknown option '${key}'${hint ? `: did you mean '${hint}'?` : ''}`,
    )
  }
}

/**
 * Errors thrown by hypersock. Every error has a stable `code` (e.g. `ECONNREFUSED`,
 * `ETIMEDOUT`, `ERR_INVALID_URL`); match on the code or the class, never on the message.
 */
export class HypersockError extends Error {
  /** Stable machine-readable code. */
  readonly code: string
  /**
   * On errors of `fetch`, `Client.fetch` and `Client.request`: the attempts made for the last
   * request sent, retries included (as `Response.attempts`); 0 when it failed before the first
   * attempt (e.g. a URL the engine refused). Undefined on other errors, and on errors thrown
   * before the request reached the engine (an already aborted signal, a GET with a body).
   */
  readonly attempts?: number

  /** Makes an error with this `code` and `message`; `options.cause` is kept as `Error.cause`. */
  constructor(code: string, message: string, options?: HypersockErrorOptions) {
    super(message, options)
    this.code = code
    this.name = new.target.name
    if (options?.attempts !== undefined) this.attempts = options.attempts
  }
}

/** Options of the {@link HypersockError} constructors. */
export interface HypersockErrorOptions {
  /** The underlying error, kept as `Error.cause`. */
  cause?: unknown
  /** Attempts made by the request that failed (see {@link HypersockError.attempts}). */
  attempts?: number
  /** The limit a {@link TimeoutError} hit (see {@link TimeoutError.phase}). */
  phase?: TimeoutPhase
}

/** The connection could not be made or was lost (`ECONNREFUSED`, `ECONNRESET`, `ENOTFOUND`, `EPIPE`; `ERR_HUB_ADAPTER` for a hub's Redis, `ERR_HUB_HISTORY_GAP` when its stream was trimmed past a process's position). */
export class ConnectionError extends HypersockError {}

/** Which limit a {@link TimeoutError} hit. */
export type TimeoutPhase = 'connect' | 'headers' | 'body' | 'request' | 'handshake' | (string & {})

/**
 * A time limit was reached (`ETIMEDOUT`). `phase` says which: `connect` (TCP, proxy and TLS),
 * `headers` (waiting for the response head), `body` (silence while reading the body) or
 * `request` (the whole request).
 */
export class TimeoutError extends HypersockError {
  /** The limit that was reached. */
  readonly phase: TimeoutPhase

  /** Makes a timeout error; `options.phase` is the limit that was reached (default `request`). */
  constructor(code: string, message: string, options?: HypersockErrorOptions) {
    super(code, message, options)
    this.phase = options?.phase ?? 'request'
  }
}

/**
 * A TLS handshake failed. Codes: `ERR_TLS_CERT_EXPIRED`, `ERR_TLS_CERT_NOT_YET_VALID`,
 * `ERR_TLS_CERT_SELF_SIGNED`, `ERR_TLS_CERT_HOSTNAME`, `ERR_TLS_CERT_UNKNOWN_CA`,
 * `ERR_TLS_CERT_INVALID`, `ERR_TLS_HANDSHAKE`; a bad certificate, key or TLS option is
 * `ERR_TLS_CONFIG`.
 */
export class TlsError extends HypersockError {}

/**
 * A redirect was not followed: `ERR_TOO_MANY_REDIRECTS` (over the limit, or a loop),
 * `ERR_REDIRECT_REFUSED` (https to http, another scheme, bad `Location`, or mode `error`).
 */
export class RedirectError extends HypersockError {}

/** An HTTP proxy refused the tunnel (`ERR_PROXY_AUTH_REQUIRED`, `ERR_PROXY_TUNNEL`). */
export class ProxyError extends HypersockError {}

/** The operation was aborted through an `AbortSignal` (`ABORT_ERR`). */
export class AbortError extends HypersockError {
  /** Makes an abort error (code `ABORT_ERR`); pass the signal's `reason` as `options.cause`. */
  constructor(message = 'the operation was aborted', options?: HypersockErrorOptions) {
    super('ABORT_ERR', message, options)
  }
}

/** An argument was not valid: a URL, a header, a close code (`ERR_INVALID_URL`, `ERR_INVALID_ARG_VALUE`). */
export class InvalidArgumentError extends HypersockError {}

/**
 * The peer broke the HTTP protocol, a body was over its limit, could not be decoded, or could not
 * be sent again (`ERR_HTTP_PROTOCOL`, `ERR_BODY_TOO_LARGE`, `ERR_DECODE`, `ERR_BODY_NOT_REPLAYABLE`).
 */
export class HttpError extends HypersockError {}

/** A WebSocket operation failed (`ERR_WS_HANDSHAKE`, `ERR_WS_CLOSED`, `ERR_INVALID_STATE`, `ERR_WS_PROTOCOL`, `ERR_WS_MESSAGE_TOO_BIG`, `ERR_WS_INVALID_UTF8`). */
export class WebSocketError extends HypersockError {}

/** A server could not start (`EADDRINUSE`, `ERR_LISTEN`). */
export class ServerError extends HypersockError {}

type ErrorClass = new (code: string, message: string, options?: HypersockErrorOptions) => HypersockError

const classes: Record<string, ErrorClass> = {
  ECONNREFUSED: ConnectionError,
  ERR_MOCK_NOT_MATCHED: ConnectionError,
  ECONNRESET: ConnectionError,
  ERR_HUB_ADAPTER: ConnectionError,
  ERR_HUB_HISTORY_GAP: ConnectionError,
  ENOTFOUND: ConnectionError,
  EPIPE: ConnectionError,
  ETIMEDOUT: TimeoutError,
  ERR_INVALID_URL: InvalidArgumentError,
  ERR_INVALID_ARG_VALUE: InvalidArgumentError,
  ERR_INVALID_ARG_TYPE: InvalidArgumentError,
  ERR_HTTP_PROTOCOL: HttpError,
  ERR_BODY_TOO_LARGE: HttpError,
  ERR_SSE_EVENT_TOO_LARGE: HttpError,
  ERR_DECODE: HttpError,
  ERR_BODY_NOT_REPLAYABLE: HttpError,
  ERR_TLS_CERT_EXPIRED: TlsError,
  ERR_TLS_CERT_NOT_YET_VALID: TlsError,
  ERR_TLS_CERT_SELF_SIGNED: TlsError,
  ERR_TLS_CERT_HOSTNAME: TlsError,
  ERR_TLS_CERT_UNKNOWN_CA: TlsError,
  ERR_TLS_CERT_INVALID: TlsError,
  ERR_TLS_HANDSHAKE: TlsError,
  ERR_TLS_CONFIG: TlsError,
  ERR_TOO_MANY_REDIRECTS: RedirectError,
  ERR_REDIRECT_REFUSED: RedirectError,
  ERR_PROXY_AUTH_REQUIRED: ProxyError,
  ERR_PROXY_TUNNEL: ProxyError,
  ERR_WS_HANDSHAKE: WebSocketError,
  ERR_WS_CLOSED: WebSocketError,
  ERR_WS_PROTOCOL: WebSocketError,
  ERR_WS_MESSAGE_TOO_BIG: WebSocketError,
  ERR_WS_INVALID_UTF8: WebSocketError,
  ERR_INVALID_STATE: WebSocketError,
  EADDRINUSE: ServerError,
  ERR_LISTEN: ServerError,
}

/** Builds the error for `code`, of the class that belongs to it. */
export function makeError(code: string, message: string, options?: HypersockErrorOptions): HypersockError {
  if (code === 'ABORT_ERR') return new AbortError(message, options)
  const Class = classes[code] ?? HypersockError
  return new Class(code, message, options)
}

/** Codes of the binding layer's own errors when a value has the wrong JavaScript type. */
const NAPI_TYPE_CODE = /^(?:[A-Za-z]+Expected|InvalidArg)$/

/** Option names of the binding that differ from the public ones. */
const PUBLIC_NAMES: Record<string, string> = {
  unixSocket: 'socketPath',
  retryStatuses: 'retry.statuses',
  retryMethods: 'retry.methods',
  poolMaxIdlePerHost: 'maxIdlePerHost',
}

/**
 * An option of the wrong type, caught where the addon converts it (`StringExpected`, ...):
 * `ERR_INVALID_ARG_TYPE` naming the option, instead of the binding's own words. The binding
 * names a nested field innermost first ("... on BindingTlsOptions.ca on BindingClientOptions.tls").
 */
function typeError(code: string, err: Error): HypersockError {
  const path = [...err.message.matchAll(/\bon Binding\w*\.(\w+)/g)].map((m) => m[1] as string).reverse()
  const field = path.length ? path.map((name) => PUBLIC_NAMES[name] ?? name).join('.') : undefined
  const expected =
    code === 'InvalidArg'
      ? undefined
      : code
          .slice(0, -'Expected'.length)
          .replace(/([a-z])([A-Z])/g, '$1 $2')
          .toLowerCase()
  const got = /JavaScript value `(\w+) ?(.*?) ?` into/.exec(err.message)
  const missing = /^Missing field `(\w+)`/.exec(err.message)?.[1]
  if (missing) {
    const name = field ? `${field}.${missing}` : missing
    return new InvalidArgumentError('ERR_INVALID_ARG_TYPE', `${name} is missing`, { cause: err })
  }
  if (!field) {
    // Not one of the shapes above: keep the binding's words, with a stable code.
    return new InvalidArgumentError('ERR_INVALID_ARG_TYPE', err.message, { cause: err })
  }
  let message = `${field} has the wrong type`
  if (expected) message += `: expected ${/^[aeiou]/.test(expected) ? 'an' : 'a'} ${expected}`
  if (got) message += `${expected ? ',' : ':'} got ${got[1]?.toLowerCase()}${got[2] ? ` ${got[2]}` : ''}`
  return new InvalidArgumentError('ERR_INVALID_ARG_TYPE', message, { cause: err })
}

/** The shape of a code the addon gives its errors: `ECONNREFUSED`, `ERR_...`, `ABORT_ERR`. */
const NATIVE_CODE = /^(E[A-Z]+|ERR_[A-Z0-9_]+|ABORT_ERR)$/

/**
 * Converts an error from the native addon into a HypersockError. The addon's errors carry
 * `code`, and `phase` (time-outs) or `attempts` (requests), as properties (see
 * crates/node/src/error.rs). Anything else is returned unchanged.
 */
export function fromNative(err: unknown): unknown {
  if (!(err instanceof Error) || err instanceof HypersockError) return err
  const { code, phase, attempts } = err as { code?: unknown; phase?: unknown; attempts?: unknown }
  if (typeof code === 'string' && NAPI_TYPE_CODE.test(code)) return typeError(code, err)
  if (typeof code !== 'string' || !NATIVE_CODE.test(code)) return err
  const options: HypersockErrorOptions = { cause: err }
  if (typeof attempts === 'number') options.attempts = attempts
  if (typeof phase === 'string') options.phase = phase
  return makeError(code, err.message, options)
}

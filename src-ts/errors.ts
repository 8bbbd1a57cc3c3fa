/**
 * Errors thrown by hypersock. Every error has a stable `code` (e.g. `ECONNREFUSED`,
 * `ETIMEDOUT`, `ERR_INVALID_URL`); match on the code or the class, never on the message.
 */
export class HypersockError extends Error {
  /** Stable machine-readable code. */
  readonly code: string

  constructor(code: string, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

/** The connection could not be made or was lost (`ECONNREFUSED`, `ECONNRESET`, `ENOTFOUND`, `EPIPE`). */
export class ConnectionError extends HypersockError {}

/** A time limit was reached (`ETIMEDOUT`). */
export class TimeoutError extends HypersockError {}

/** The operation was aborted through an `AbortSignal` (`ABORT_ERR`). */
export class AbortError extends HypersockError {
  constructor(message = 'the operation was aborted', options?: { cause?: unknown }) {
    super('ABORT_ERR', message, options)
  }
}

/** An argument was not valid: a URL, a header, a close code (`ERR_INVALID_URL`, `ERR_INVALID_ARG_VALUE`). */
export class InvalidArgumentError extends HypersockError {}

/** The peer broke the HTTP protocol or a body was over its limit (`ERR_HTTP_PROTOCOL`, `ERR_BODY_TOO_LARGE`). */
export class HttpError extends HypersockError {}

/** A WebSocket operation failed (`ERR_WS_HANDSHAKE`, `ERR_WS_CLOSED`, `ERR_INVALID_STATE`, `ERR_WS_PROTOCOL`, `ERR_WS_MESSAGE_TOO_BIG`, `ERR_WS_INVALID_UTF8`). */
export class WebSocketError extends HypersockError {}

/** A server could not start (`EADDRINUSE`, `ERR_LISTEN`). */
export class ServerError extends HypersockError {}

const classes: Record<string, new (code: string, message: string, options?: { cause?: unknown }) => HypersockError> = {
  ECONNREFUSED: ConnectionError,
  ECONNRESET: ConnectionError,
  ENOTFOUND: ConnectionError,
  EPIPE: ConnectionError,
  ETIMEDOUT: TimeoutError,
  ERR_INVALID_URL: InvalidArgumentError,
  ERR_INVALID_ARG_VALUE: InvalidArgumentError,
  ERR_HTTP_PROTOCOL: HttpError,
  ERR_BODY_TOO_LARGE: HttpError,
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
export function makeError(code: string, message: string, cause?: unknown): HypersockError {
  const Class = classes[code] ?? HypersockError
  return new Class(code, message, cause === undefined ? undefined : { cause })
}

/**
 * Converts an error thrown by the native addon (message `CODE: text`) into a HypersockError.
 * Anything else is returned unchanged.
 */
export function fromNative(err: unknown): unknown {
  if (!(err instanceof Error) || err instanceof HypersockError) return err
  const match = /^([A-Z][A-Z0-9_]+): ([\s\S]*)$/.exec(err.message)
  if (!match) return err
  return makeError(match[1] as string, match[2] as string, err)
}

import { headersFromFlat } from './body.js'
import { fromNative, InvalidArgumentError } from './errors.js'
import type { Binding } from './native.js'

/** Kinds of events the addon reports for a WebSocket. */
export const WsEvent = { Open: 0, Message: 1, Close: 2 } as const

/** Handlers and limits of the WebSocket side of {@link serve}. */
export interface WebSocketHandler<Data = unknown> {
  /** A connection opened. */
  open?(ws: ServerWebSocket<Data>): void
  /** A message arrived: a string for text, a Buffer for binary. Called in order per connection. */
  message?(ws: ServerWebSocket<Data>, data: string | Buffer, isBinary: boolean): void
  /** The connection closed; called exactly once, with 1006 when it dropped without a close frame. */
  close?(ws: ServerWebSocket<Data>, code: number, reason: string): void
  /** Largest message accepted, in bytes; a bigger one closes with 1009. Default 16 MiB. */
  maxMessageSize?: number
  /** Time to wait for the peer's close frame after sending ours, in ms. Default 5 000. */
  closeTimeout?: number
}

/** Ready states, as in WHATWG `WebSocket`. */
export const ReadyState = { CONNECTING: 0, OPEN: 1, CLOSING: 2, CLOSED: 3 } as const

const encoder = new TextEncoder()

/** Validates a close code and reason the way WHATWG `WebSocket.close` does. */
export function checkClose(code: number | undefined, reason: string | undefined, server: boolean): void {
  if (code !== undefined) {
    const ok =
      code === 1000 ||
      (code >= 3000 && code <= 4999) ||
      (server && code >= 1001 && code <= 1014 && ![1004, 1005, 1006].includes(code))
    if (!Number.isInteger(code) || !ok) {
      throw new InvalidArgumentError(
        'ERR_INVALID_ARG_VALUE',
        `close code ${code} may not be sent; use 1000 or 3000-4999`,
      )
    }
  }
  if (reason !== undefined && encoder.encode(reason).byteLength > 123) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'close reason must be at most 123 bytes of UTF-8')
  }
}

/** Bytes view of any binary message payload. */
export function binaryPayload(data: ArrayBufferLike | ArrayBufferView): Uint8Array {
  if (ArrayBuffer.isView(data)) return new Uint8Array(data.buffer, data.byteOffset, data.byteLength)
  return new Uint8Array(data)
}

/** The server side of a WebSocket connection. */
export class ServerWebSocket<Data = unknown> {
  #native: Binding.BindingWebSocket
  #state: number = ReadyState.OPEN
  #headers: Headers | undefined
  /** Per-connection data of your own. */
  data: Data = undefined as Data

  /** @internal */
  constructor(raw: Binding.BindingWebSocket) {
    this.#native = raw
  }

  /** Connection id, unique within the server. */
  get id(): number {
    return this.#native.id
  }

  /** The request target of the upgrade request, e.g. `/chat?room=a`. */
  get url(): string {
    return this.#native.url
  }

  /** Headers of the upgrade request. */
  get headers(): Headers {
    this.#headers ??= headersFromFlat(this.#native.headers)
    return this.#headers
  }

  /** The client's IP address. */
  get remoteAddress(): string {
    return this.#native.remoteAddress
  }

  /** `OPEN`, `CLOSING` or `CLOSED` (1, 2, 3). */
  get readyState(): number {
    return this.#state
  }

  /** Bytes queued and not yet written to the socket. */
  get bufferedAmount(): number {
    return this.#native.bufferedAmount
  }

  /** Sends a text (string) or binary message. Throws `ERR_WS_CLOSED` once closing. */
  send(data: string | ArrayBufferLike | ArrayBufferView): void {
    try {
      if (typeof data === 'string') this.#native.sendText(data)
      else this.#native.sendBinary(binaryPayload(data))
    } catch (err) {
      throw fromNative(err)
    }
  }

  /** Sends a ping. */
  ping(data: string | ArrayBufferView = ''): void {
    const bytes = typeof data === 'string' ? encoder.encode(data) : binaryPayload(data)
    try {
      this.#native.ping(bytes)
    } catch (err) {
      throw fromNative(err)
    }
  }

  /** Starts the close handshake. The `close` handler runs when it completes. */
  close(code = 1000, reason = ''): void {
    checkClose(code, reason, true)
    if (this.#state !== ReadyState.OPEN) return
    this.#state = ReadyState.CLOSING
    try {
      this.#native.close(code, reason)
    } catch (err) {
      throw fromNative(err)
    }
  }

  /** @internal */
  markClosed(): void {
    this.#state = ReadyState.CLOSED
  }
}

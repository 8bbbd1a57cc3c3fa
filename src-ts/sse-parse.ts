// A `text/event-stream` parser (WHATWG HTML, "Event stream interpretation") for the event streams
// that `EventSource` reads in JS: those a mock dispatcher (`hypersock/testing`'s MockAgent)
// answers. Real streams are parsed in Rust (crates/core/src/sse); this one keeps to the same
// limits and errors.
import { type HypersockError, makeError } from './errors.js'

/** One event of a stream. */
export interface SseEvent {
  /** The event type (`message` when the stream gave none). */
  type: string
  /** The data lines joined with `\n`. */
  data: string
  /** The last event ID in force. */
  lastEventId: string
}

const LF = 0x0a
const CR = 0x0d
/** Lossy UTF-8, keeping a BOM: only the stream's first line drops one (done by hand). */
const decoder = new TextDecoder('utf-8', { ignoreBOM: true })

/** `ERR_SSE_EVENT_TOO_LARGE`, as the native parser words it. */
export function eventTooLarge(limit: number): HypersockError {
  return makeError(
    'ERR_SSE_EVENT_TOO_LARGE',
    `event stream line or event larger than the limit of ${limit} bytes (raise maxEventSize if the server is trusted)`,
  )
}

/**
 * A streaming parser. It holds at most `max` bytes of an unfinished line and of an unfinished
 * event (type and data): past either, {@link SseParser.push} throws `ERR_SSE_EVENT_TOO_LARGE`
 * and the parser stays failed.
 */
export class SseParser {
  /** The reconnection time set by the last `retry` field, if any. */
  retry: number | undefined = undefined
  /** The last event ID string: the ID of the last event dispatched, kept across connections. */
  lastEventId: string
  #max: number
  #tooLarge = false
  #partial: Uint8Array[] = []
  #partialSize = 0
  #started = false
  #lastCr = false
  #type = ''
  #data = ''
  #dataSize = 0
  #hasData = false
  #idBuffer: string

  constructor(lastEventId: string, max: number) {
    this.lastEventId = lastEventId
    this.#idBuffer = lastEventId
    this.#max = max
  }

  /** Feeds bytes, appending the events they complete to `out`; throws once over the limit. */
  push(bytes: Uint8Array, out: SseEvent[]): void {
    if (this.#tooLarge) throw eventTooLarge(this.#max)
    if (bytes.byteLength === 0) return
    let start = 0
    if (this.#lastCr && bytes[0] === LF) start = 1 // the LF of a CRLF split across chunks
    this.#lastCr = false
    for (let i = start; i < bytes.byteLength; i++) {
      const b = bytes[i]
      if (b !== LF && b !== CR) continue
      this.#add(bytes.subarray(start, i))
      this.#line(out)
      if (this.#tooLarge) throw eventTooLarge(this.#max)
      if (b === CR) {
        if (i + 1 === bytes.byteLength) this.#lastCr = true
        else if (bytes[i + 1] === LF) i++
      }
      start = i + 1
    }
    this.#add(bytes.subarray(start))
  }

  #add(piece: Uint8Array): void {
    if (piece.byteLength === 0) return
    if (this.#partialSize + piece.byteLength > this.#max) {
      this.#tooLarge = true
      throw eventTooLarge(this.#max)
    }
    this.#partial.push(piece.slice())
    this.#partialSize += piece.byteLength
  }

  #line(out: SseEvent[]): void {
    let raw = Buffer.concat(this.#partial, this.#partialSize)
    this.#partial = []
    this.#partialSize = 0
    if (!this.#started) {
      this.#started = true
      if (raw[0] === 0xef && raw[1] === 0xbb && raw[2] === 0xbf) raw = raw.subarray(3)
    }
    const line = decoder.decode(raw)
    if (line === '') {
      this.#dispatch(out)
      return
    }
    if (line.startsWith(':')) return
    const colon = line.indexOf(':')
    const field = colon < 0 ? line : line.slice(0, colon)
    let value = colon < 0 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    const size = Buffer.byteLength(value)
    if (field === 'event') {
      if (this.#dataSize + size > this.#max) this.#tooLarge = true
      else this.#type = value
    } else if (field === 'data') {
      if (this.#dataSize + Buffer.byteLength(this.#type) + size + 1 > this.#max) this.#tooLarge = true
      else {
        this.#data += `${value}\n`
        this.#dataSize += size + 1
        this.#hasData = true
      }
    } else if (field === 'id') {
      if (!value.includes('\0')) this.#idBuffer = value
    } else if (field === 'retry' && /^[0-9]+$/.test(value)) {
      this.retry = Number(value)
    }
  }

  #dispatch(out: SseEvent[]): void {
    this.lastEventId = this.#idBuffer
    if (this.#hasData) {
      out.push({ type: this.#type || 'message', data: this.#data.slice(0, -1), lastEventId: this.lastEventId })
    }
    this.#type = ''
    this.#data = ''
    this.#dataSize = 0
    this.#hasData = false
  }
}

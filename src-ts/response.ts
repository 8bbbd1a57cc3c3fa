// hypersock's `Response`: a real WHATWG Response (a subclass of the global one) that keeps a
// string or bytes body as given, so that a server sends it without the stream the global
// constructor builds for every body (about 15 µs per response in Node 20). The body becomes a
// real one, through the global class, the moment anything reads it.

import { flattenHeaders } from './wire/headers.js'

const NativeResponse = globalThis.Response
const TEXT = 'text/plain;charset=UTF-8'
const JSON_TYPE = 'application/json'
/** Statuses whose responses have no body (Fetch "null body status"). */
const NULL_BODY = new Set([101, 103, 204, 205, 304])

/** A body kept as given: text, bytes, or none. */
type Kept = string | Uint8Array<ArrayBuffer> | null

/** The parts of a response the server sends as they are: status, flat header list, body. */
export interface FastParts {
  status: number
  headers: string[]
  body: Kept
}

let partsOf: (res: Response) => FastParts | undefined

/**
 * A WHATWG `Response` (`instanceof globalThis.Response` holds, and `clone()`, `headers`, `text()`
 * and the rest behave as the global class's). A string, `Uint8Array` or `ArrayBuffer` body is
 * kept as given until something reads it, which makes returning one from a server handler cost
 * about what returning a string costs. Any other body (streams, `Blob`, `FormData`,
 * `URLSearchParams`) goes to the global class as usual.
 *
 * `x instanceof Response` is true for global `Response` objects too.
 */
export class Response extends NativeResponse {
  /** The body as given; `undefined` when the global class holds it. */
  #kept: Kept | undefined
  /** The global response that holds the body once something read it. */
  #real: globalThis.Response | undefined

  /** Makes a response, as `new Response(body, init)`; a string or bytes body is kept as it is. */
  constructor(body?: BodyInit | null, init?: ResponseInit) {
    const keep =
      body === undefined ||
      body === null ||
      typeof body === 'string' ||
      body instanceof Uint8Array ||
      body instanceof ArrayBuffer
    super(keep ? null : body, init)
    if (!keep) return
    const kept: Kept =
      body === undefined || body === null
        ? null
        : body instanceof ArrayBuffer
          ? new Uint8Array(body)
          : (body as string | Uint8Array<ArrayBuffer>)
    if (kept !== null) {
      if (NULL_BODY.has(this.status)) {
        throw new TypeError(`Response constructor: a ${this.status} response cannot have a body`)
      }
      if (typeof kept === 'string' && !this.headers.has('content-type')) this.headers.set('content-type', TEXT)
    }
    this.#kept = kept
  }

  static {
    partsOf = (res) =>
      res.#kept === undefined || res.#real !== undefined
        ? undefined
        : { status: res.status, headers: flattenHeaders(res.headers), body: res.#kept }
  }

  /** True for this class's responses and for global `Response` objects alike. */
  static override [Symbol.hasInstance](value: unknown): boolean {
    return value instanceof NativeResponse
  }

  /** A JSON response, as `Response.json()`, with the body kept as text. */
  static override json(data: unknown, init?: ResponseInit): Response {
    const text = JSON.stringify(data)
    if (text === undefined) throw new TypeError('Response.json: the value cannot be serialized as JSON')
    const headers = new Headers(init?.headers)
    if (!headers.has('content-type')) headers.set('content-type', JSON_TYPE)
    return new Response(text, { status: init?.status, statusText: init?.statusText, headers })
  }

  /** The global response holding the body, made when something first reads it. */
  #body(): globalThis.Response {
    this.#real ??= new NativeResponse(this.#kept as Kept, {
      status: this.status,
      statusText: this.statusText,
      headers: this.headers,
    })
    return this.#real
  }

  override get body(): ReadableStream<Uint8Array<ArrayBuffer>> | null {
    if (this.#kept === undefined) return super.body
    return this.#kept === null ? null : this.#body().body
  }

  override get bodyUsed(): boolean {
    if (this.#kept === undefined) return super.bodyUsed
    return this.#real?.bodyUsed ?? false
  }

  override arrayBuffer(): Promise<ArrayBuffer> {
    return this.#kept === undefined ? super.arrayBuffer() : this.#body().arrayBuffer()
  }

  override blob(): Promise<Blob> {
    return this.#kept === undefined ? super.blob() : this.#body().blob()
  }

  override formData(): Promise<FormData> {
    return this.#kept === undefined ? super.formData() : this.#body().formData()
  }

  override json(): Promise<unknown> {
    return this.#kept === undefined ? super.json() : this.#body().json()
  }

  override text(): Promise<string> {
    return this.#kept === undefined ? super.text() : this.#body().text()
  }

  override clone(): Response {
    if (this.#kept === undefined) return super.clone() as Response
    if (this.bodyUsed) throw new TypeError('Response.clone: the body has already been read')
    if (this.#real) return this.#real.clone() as Response
    return new Response(this.#kept, { status: this.status, statusText: this.statusText, headers: this.headers })
  }
}

/** The status, headers and kept body of a hypersock `Response` nobody has read; else undefined. */
export function fastParts(value: object): FastParts | undefined {
  return Object.getPrototypeOf(value) === Response.prototype ? partsOf(value as Response) : undefined
}

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

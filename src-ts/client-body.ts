// Request bodies of the client: bytes that cross into Rust in one call, or a stream pumped chunk
// by chunk into a bounded native channel.
import { encodeBody } from './body.js'

/** Body types accepted by the client's `fetch`. */
export type ClientBodyInit =
  | string
  | Uint8Array
  | ArrayBuffer
  | ArrayBufferView
  | URLSearchParams
  | FormData
  | Blob
  | ReadableStream<Uint8Array | string>
  | AsyncIterable<Uint8Array | string>
  | null
  | undefined

/** A body ready to send: bytes, or chunks to stream. */
export interface PreparedBody {
  bytes: Uint8Array | null
  stream: AsyncIterable<Uint8Array | string> | null
  type: string | null
  length: number | null
}

function isAsyncIterable(v: unknown): v is AsyncIterable<Uint8Array | string> {
  return v !== null && typeof v === 'object' && Symbol.asyncIterator in v
}

async function* readStream(stream: ReadableStream<Uint8Array | string>): AsyncIterable<Uint8Array | string> {
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

function quote(s: string): string {
  return s.replace(/\r/g, '%0D').replace(/\n/g, '%0A').replace(/"/g, '%22')
}

/** Encodes a FormData as `multipart/form-data` (RFC 7578). */
async function encodeFormData(form: FormData): Promise<{ bytes: Uint8Array; type: string }> {
  const boundary = `----hypersock${crypto.randomUUID().replace(/-/g, '')}`
  const parts: Uint8Array[] = []
  const enc = new TextEncoder()
  for (const [name, value] of form) {
    if (typeof value === 'string') {
      parts.push(
        enc.encode(
          `--${boundary}\r\nContent-Disposition: form-data; name="${quote(name)}"\r\n\r\n${value.replace(/\r?\n|\r/g, '\r\n')}\r\n`,
        ),
      )
    } else {
      const file = value as File
      const filename = file.name ?? 'blob'
      parts.push(
        enc.encode(
          `--${boundary}\r\nContent-Disposition: form-data; name="${quote(name)}"; filename="${quote(filename)}"\r\n` +
            `Content-Type: ${file.type || 'application/octet-stream'}\r\n\r\n`,
        ),
      )
      parts.push(new Uint8Array(await file.arrayBuffer()))
      parts.push(enc.encode('\r\n'))
    }
  }
  parts.push(enc.encode(`--${boundary}--\r\n`))
  return { bytes: Buffer.concat(parts), type: `multipart/form-data; boundary=${boundary}` }
}

/** Turns any accepted body into bytes or a stream, with its default content type. */
export async function prepareBody(body: ClientBodyInit): Promise<PreparedBody> {
  if (body === null || body === undefined) return { bytes: null, stream: null, type: null, length: null }
  if (typeof FormData !== 'undefined' && body instanceof FormData) {
    const { bytes, type } = await encodeFormData(body)
    return { bytes, stream: null, type, length: bytes.byteLength }
  }
  if (typeof Blob !== 'undefined' && body instanceof Blob) {
    const bytes = new Uint8Array(await body.arrayBuffer())
    return { bytes, stream: null, type: body.type || null, length: bytes.byteLength }
  }
  if (typeof ReadableStream !== 'undefined' && body instanceof ReadableStream) {
    if (body.locked) throw new TypeError('the request body stream is locked')
    return { bytes: null, stream: readStream(body), type: null, length: null }
  }
  if (isAsyncIterable(body)) return { bytes: null, stream: body, type: null, length: null }
  const { data, type } = encodeBody(body as Parameters<typeof encodeBody>[0])
  const bytes = typeof data === 'string' ? Buffer.from(data, 'utf8') : data
  return { bytes, stream: null, type, length: bytes ? bytes.byteLength : null }
}

/** Bytes of one streamed chunk. */
export function chunkBytes(chunk: Uint8Array | string): Buffer {
  if (typeof chunk === 'string') return Buffer.from(chunk, 'utf8')
  if (Buffer.isBuffer(chunk)) return chunk
  if (chunk instanceof Uint8Array) return Buffer.from(chunk.buffer, chunk.byteOffset, chunk.byteLength)
  throw new TypeError('request body stream chunks must be Uint8Array or string')
}

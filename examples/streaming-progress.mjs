// Streaming upload and download with progress. The client uploads a body made by an async
// generator (sent chunked, never held whole in memory) and the server counts it as it arrives
// from `req.body`; then the client downloads a body the server streams from an async generator,
// reading `res.body` chunk by chunk. `onUploadProgress` / `onDownloadProgress` report the bytes
// moved so far.
//
// Run: node examples/streaming-progress.mjs   (from the repository root; loopback only)
import { createHash } from 'node:crypto'
import { Client, Response, serve } from 'hypersock'

const CHUNK = 64 * 1024
const CHUNKS = 16 // 1 MiB each way

/** Chunk `i` of the data: deterministic bytes, so both sides can check what they got. */
const chunk = (i) => Buffer.alloc(CHUNK, i % 251)

const server = await serve({
  port: 0,
  hostname: '127.0.0.1',
  async fetch(req) {
    if (req.path === '/upload' && req.method === 'POST') {
      // The body is pulled from the connection as we read it: a slow reader slows the client down.
      const hash = createHash('sha256')
      let bytes = 0
      for await (const part of req.body) {
        hash.update(part)
        bytes += part.byteLength
      }
      return Response.json({ bytes, sha256: hash.digest('hex') })
    }
    if (req.path === '/download') {
      return {
        headers: { 'content-type': 'application/octet-stream', 'content-length': String(CHUNK * CHUNKS) },
        body: (async function* () {
          for (let i = 0; i < CHUNKS; i++) yield chunk(i)
        })(),
      }
    }
    return { status: 404 }
  },
})
console.log(`server listening on ${server.url}`)

const client = new Client()
const percent = (p) => (p.total ? `${Math.round((100 * p.loaded) / p.total)}%` : `${p.loaded} bytes`)

// Upload: a streamed body of unknown length (total is null), progress by bytes sent.
const sent = createHash('sha256')
async function* uploadBody() {
  for (let i = 0; i < CHUNKS; i++) {
    const c = chunk(i)
    sent.update(c)
    yield c
  }
}
let lastUp = 0
const up = await client.fetch(new URL('/upload', server.url), {
  method: 'POST',
  body: uploadBody(),
  onUploadProgress: (p) => {
    lastUp = p.loaded
    console.log(`upload progress: ${p.loaded} bytes sent`)
  },
})
const result = await up.json()
console.log(`upload done: server received ${result.bytes} bytes, sha256 ${result.sha256.slice(0, 16)}...`)
if (result.bytes !== CHUNK * CHUNKS || result.sha256 !== sent.digest('hex')) throw new Error('upload mismatch')

// Download: read the streamed body as it comes, with progress against Content-Length.
let lastDown = 0
const down = await client.fetch(new URL('/download', server.url), {
  onDownloadProgress: (p) => {
    lastDown = p.loaded
    console.log(`download progress: ${p.loaded}/${p.total ?? '?'} (${percent(p)})`)
  },
})
const got = createHash('sha256')
let received = 0
for await (const part of down.body) {
  got.update(part)
  received += part.byteLength
}
const want = createHash('sha256')
for (let i = 0; i < CHUNKS; i++) want.update(chunk(i))
console.log(`download done: ${received} bytes`)
if (received !== CHUNK * CHUNKS || got.digest('hex') !== want.digest('hex')) throw new Error('download mismatch')

await server.stop()
console.log(`done: uploaded ${lastUp} and downloaded ${lastDown} bytes with progress, contents verified`)

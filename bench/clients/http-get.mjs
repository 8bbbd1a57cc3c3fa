// Client GET load, run in its own process by bench/scenarios/client.mjs:
//   node http-get.mjs --client=hypersock|hypersock +HOOK|undici.request|global fetch --url=URL --concurrency=N --seconds=S --warmup=W
//     [--ca=FILE] [--h2] [--bytes]
// Keeps N GETs in flight for W seconds (not counted), then S seconds; prints {"requests","seconds","rate"}
// (with --bytes, the rate is MB/s of body read). --ca trusts a PEM CA (hypersock: tls.ca; undici and
// global fetch: NODE_EXTRA_CA_CERTS set by the scenario); --h2 asks for HTTP/2 where the client can.
import { readFileSync } from 'node:fs'
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: {
    client: { type: 'string' },
    url: { type: 'string' },
    concurrency: { type: 'string', default: '1' },
    seconds: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
    ca: { type: 'string' },
    h2: { type: 'boolean', default: false },
    bytes: { type: 'boolean', default: false },
  },
})

const ca = values.ca ? readFileSync(values.ca, 'utf8') : undefined
let bodyBytes = 0

/** Reads a web ReadableStream to the end, counting bytes. */
async function drain(stream) {
  const reader = stream.getReader()
  for (;;) {
    const { done, value } = await reader.read()
    if (done) return
    bodyBytes += value.byteLength
  }
}

function check(status) {
  if (status !== 200) throw new Error(`unexpected status ${status}`)
}

async function hypersockClient(hooks) {
  const { Client } = await import('../../dist/index.js')
  return new Client({
    timeout: 60_000,
    http2: values.h2 ? 'always' : 'auto',
    tls: ca ? { ca } : undefined,
    ...(hooks ? { hooks } : {}),
  })
}

async function hooked(hooks) {
  const client = await hypersockClient(hooks)
  return async (url) => {
    const res = await client.fetch(url)
    check(res.status)
    await res.text()
  }
}

/** A function doing one GET and reading the whole body, for each client under test. */
const makers = {
  async hypersock() {
    const client = await hypersockClient()
    return async (url) => {
      const res = await client.fetch(url)
      check(res.status)
      if (values.bytes) await drain(res.body)
      else await res.text()
    }
  },
  // The same client with hooks that do nothing, to price each kind (rows 'hypersock +...').
  async 'hypersock +beforeRequest'() {
    return hooked({ beforeRequest: [() => {}] })
  },
  async 'hypersock +afterResponse'() {
    return hooked({ afterResponse: [() => {}] })
  },
  async 'hypersock +beforeRetry+beforeRedirect'() {
    return hooked({ beforeRetry: [() => {}], beforeRedirect: [() => {}] })
  },
  async 'hypersock +compose'() {
    const client = await hypersockClient()
    const composed = client.compose((next) => (input, init) => next(input, init))
    return async (url) => {
      const res = await composed.fetch(url)
      check(res.status)
      await res.text()
    }
  },
  async 'undici.request'() {
    const { Agent, request } = await import('undici')
    const dispatcher = new Agent({ allowH2: values.h2, connect: ca ? { ca } : undefined })
    return async (url) => {
      const { statusCode, body } = await request(url, { dispatcher })
      check(statusCode)
      if (values.bytes) for await (const chunk of body) bodyBytes += chunk.byteLength
      else await body.text()
    }
  },
  async 'global fetch'() {
    return async (url) => {
      const res = await fetch(url)
      check(res.status)
      if (values.bytes) await drain(res.body)
      else await res.text()
    }
  },
}

/** Runs `concurrency` loops of GETs for `seconds`; returns [requests, elapsed seconds]. */
async function load(get, url, concurrency, seconds) {
  const start = performance.now()
  const end = start + seconds * 1000
  let requests = 0
  const loop = async () => {
    while (performance.now() < end) {
      await get(url)
      requests++
    }
  }
  await Promise.all(Array.from({ length: concurrency }, loop))
  return [requests, (performance.now() - start) / 1000]
}

const make = makers[values.client]
if (!make || !values.url) {
  console.error(`usage: http-get.mjs --client=${Object.keys(makers).join('|')} --url=URL [--concurrency=N]`)
  process.exit(2)
}
const get = await make()
const concurrency = Number(values.concurrency)
await load(get, values.url, concurrency, Number(values.warmup))
bodyBytes = 0
const [requests, seconds] = await load(get, values.url, concurrency, Number(values.seconds))
const rate = Number(((values.bytes ? bodyBytes / 1e6 : requests) / seconds).toFixed(1))
console.log(JSON.stringify({ requests, seconds: Number(seconds.toFixed(3)), rate }))
// The pools keep idle connections open; leave without waiting for them.
process.exit(0)

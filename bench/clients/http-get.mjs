// Client GET load, run in its own process by bench/scenarios/client.mjs:
//   node http-get.mjs --client=hypersock|undici.request|global fetch --url=URL --concurrency=N --seconds=S --warmup=W
// Keeps N GETs in flight for W seconds (not counted), then S seconds; prints {"requests","seconds","rate"}.
import { parseArgs } from 'node:util'

const { values } = parseArgs({
  options: {
    client: { type: 'string' },
    url: { type: 'string' },
    concurrency: { type: 'string', default: '1' },
    seconds: { type: 'string', default: '3' },
    warmup: { type: 'string', default: '1' },
  },
})

function check(status) {
  if (status !== 200) throw new Error(`unexpected status ${status}`)
}

/** A function doing one GET and reading the whole body, for each client under test. */
const makers = {
  async hypersock() {
    const { Client } = await import('../../dist/index.js')
    const client = new Client({ timeout: 10_000 })
    return async (url) => {
      const res = await client.fetch(url)
      check(res.status)
      await res.text()
    }
  },
  async 'undici.request'() {
    const { request } = await import('undici')
    return async (url) => {
      const { statusCode, body } = await request(url)
      check(statusCode)
      await body.text()
    }
  },
  async 'global fetch'() {
    return async (url) => {
      const res = await fetch(url)
      check(res.status)
      await res.text()
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
const [requests, seconds] = await load(get, values.url, concurrency, Number(values.seconds))
const rate = Number((requests / seconds).toFixed(1))
console.log(JSON.stringify({ requests, seconds: Number(seconds.toFixed(3)), rate }))
// The pools keep idle connections open; leave without waiting for them.
process.exit(0)

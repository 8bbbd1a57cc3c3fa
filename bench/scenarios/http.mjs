// HTTP server scenarios, each server in its own process:
// - hello world GET req/s (wrk -c64, HTTP/1.1 keep-alive)
// - 1 KiB JSON POST echo req/s (wrk -c64 with a Lua script)
// - HTTP/2 hello world req/s (h2load over h2c, 16 connections x 16 streams)
// Peers: node:http (node:http2 for HTTP/2), fastify, uWebSockets, and hyper (pure Rust ceiling).
import { mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { bin, node, OUT_DIR, ROUNDS, SECONDS, WARMUP } from '../lib/config.mjs'
import { ensureTools, idleRssPerConnection, run, withServer } from '../lib/proc.mjs'

const ourServer = (mode, ...args) => node('servers/hypersock-http.mjs', mode, ...args)

const HYPERSOCK = ['hypersock', ...node('servers/hypersock-http.mjs')]
const HYPER = ['hyper (pure Rust)', bin('hyper-hello'), ['--port', '0']]
const HTTP1_SERVERS = [
  HYPERSOCK,
  ['node:http', ...node('servers/node-http.mjs')],
  ['fastify', ...node('servers/fastify-http.mjs')],
  ['uWebSockets', ...node('servers/uws-http.mjs')],
  HYPER,
]
const HTTP2_SERVERS = [HYPERSOCK, ['node:http2', ...node('servers/node-http2.mjs')], HYPER]

/** A JSON document of just under 1 KiB, the body of the POST echo scenario. */
function jsonBody() {
  const items = []
  for (;;) {
    const item = { id: items.length, name: `item-${items.length}` }
    if (JSON.stringify({ items: [...items, item] }).length > 1024) return JSON.stringify({ items })
    items.push(item)
  }
}

/** The wrk Lua script that POSTs the JSON document. */
function postScript() {
  const body = jsonBody()
  const path = join(OUT_DIR, 'post.lua')
  writeFileSync(
    path,
    `wrk.method = "POST"\nwrk.body = ${JSON.stringify(body)}\nwrk.headers["Content-Type"] = "application/json"\n`,
  )
  return path
}

/**
 * Measures every server `ROUNDS` times, the servers taking turns within each round, and records
 * the median per server: these machines are noisy, and a slow spell then hits every server
 * alike instead of deciding one ratio.
 */
async function rounds(record, scenario, servers, measure) {
  const values = new Map(servers.map(([subject]) => [subject, []]))
  for (let round = 0; round < ROUNDS; round++) {
    for (const [subject, command, args] of servers) {
      await record(
        `${scenario} (round ${round + 1}/${ROUNDS})`,
        subject,
        async () => {
          const result = await withServer(subject, command, args, measure)
          values.get(subject).push(typeof result === 'number' ? result : result.value)
          return result
        },
        { provisional: true },
      )
    }
  }
  for (const [subject] of servers) {
    const got = values.get(subject)
    await record(scenario, subject, () => {
      if (got.length === 0) throw new Error('every round failed')
      const sorted = [...got].sort((x, y) => x - y)
      return { value: sorted[Math.floor(sorted.length / 2)], detail: `median of ${got.map(Math.round).join(', ')}` }
    })
  }
}

/** Hello world GET with wrk. */
export async function httpHello(record) {
  await rounds(record, 'http-hello', HTTP1_SERVERS, async (port) => {
    const url = `http://127.0.0.1:${port}/`
    await wrk(url, WARMUP)
    return wrk(url, SECONDS)
  })
}

const IDLE_CONNECTIONS = Number(process.env.BENCH_IDLE_CONNECTIONS ?? 10_000)

/**
 * Anonymous RSS growth (`memory` in lib/proc.mjs) per idle HTTP/1.1 keep-alive connection (bytes;
 * lower is better): http-idle opens
 * IDLE_CONNECTIONS connections (256 at a time), makes one GET on each and holds them.
 */
export async function httpIdle(record) {
  for (const [subject, command, args] of [HTTP1_SERVERS[0], HTTP1_SERVERS[1], HTTP1_SERVERS[3]]) {
    await record('http-idle-rss-bytes-per-conn', subject, () =>
      withServer(subject, command, args, (port, pid) =>
        idleRssPerConnection(
          pid,
          bin('http-idle'),
          ['--url', `http://127.0.0.1:${port}/`, '--connections', String(IDLE_CONNECTIONS), '--duration-secs', '60'],
          IDLE_CONNECTIONS,
        ),
      ),
    )
  }
}

/** 1 KiB JSON POST echo, same servers. */
export async function httpJsonEcho(record) {
  const script = postScript()
  await rounds(record, 'http-json', HTTP1_SERVERS, async (port) => {
    const url = `http://127.0.0.1:${port}/`
    await wrk(url, WARMUP, script)
    return wrk(url, SECONDS, script)
  })
}

/** HTTP/2 hello world over h2c with h2load. */
export async function http2Hello(record) {
  await rounds(record, 'http2-hello', HTTP2_SERVERS, async (port) => {
    const url = `http://127.0.0.1:${port}/`
    await h2load(url, WARMUP)
    return h2load(url, SECONDS)
  })
}

/** Hello world from a static route (no JS), from a handler returning a string and returning a Response, vs uWebSockets; then a `:param` route. */
export async function httpRoutes(record) {
  const hello = async (port) => {
    const url = `http://127.0.0.1:${port}/`
    await wrk(url, WARMUP)
    return wrk(url, SECONDS)
  }
  await rounds(
    record,
    'http-static-route',
    [
      ['hypersock static route', ...ourServer('static')],
      ['hypersock string', ...ourServer('string')],
      ['hypersock Response', ...ourServer('response')],
      ['uWebSockets', ...node('servers/uws-http.mjs')],
    ],
    hello,
  )
  await rounds(
    record,
    'http-param-route',
    [
      ['hypersock', ...ourServer('param')],
      ['uWebSockets', ...node('servers/uws-param.mjs')],
    ],
    async (port) => {
      const url = `http://127.0.0.1:${port}/users/42`
      await wrk(url, WARMUP)
      return wrk(url, SECONDS)
    },
  )
}

/** A 4 KiB and a 1 MiB file from a directory: hypersock's dir() vs @fastify/static vs nginx with one worker. */
export async function httpFiles(record) {
  await ensureTools({ nginx: 'nginx' })
  const root = join(OUT_DIR, 'files')
  mkdirSync(root, { recursive: true })
  const sizes = [
    ['4k', 4 * 1024],
    ['1m', 1024 * 1024],
  ]
  for (const [name, size] of sizes) {
    const data = Buffer.alloc(size)
    for (let i = 0; i < size; i++) data[i] = (i * 31) % 256
    writeFileSync(join(root, `${name}.bin`), data)
  }
  const servers = [
    ['hypersock', ...ourServer('files', root)],
    ['@fastify/static', ...node('servers/fastify-static.mjs', root)],
    ['nginx (1 worker)', ...node('servers/nginx-static.mjs', root)],
  ]
  for (const [name] of sizes) {
    await rounds(record, `http-file-${name}`, servers, async (port) => {
      const url = `http://127.0.0.1:${port}/files/${name}.bin`
      await wrk(url, WARMUP)
      return wrk(url, SECONDS)
    })
  }
}

/** Runs `wrk -t1 -c64` for `seconds` and returns its Requests/sec. */
async function wrk(url, seconds, script) {
  const args = ['-t1', '-c64', `-d${seconds}s`, ...(script ? ['-s', script] : []), url]
  const out = await run('wrk', args, { timeoutMs: seconds * 1000 + 15_000 })
  const rate = /Requests\/sec:\s*([\d.]+)/.exec(out)
  if (!rate) throw new Error(`cannot find Requests/sec in the output of wrk:\n${out}`)
  const non2xx = /Non-2xx or 3xx responses:\s*(\d+)/.exec(out)
  if (non2xx) throw new Error(`${non2xx[1]} responses were not 2xx`)
  const errors = /Socket errors: (.*)/.exec(out)
  return { value: Number(rate[1]), detail: errors ? `wrk socket errors: ${errors[1]}` : undefined }
}

/** Runs h2load for `seconds` (16 connections, 16 concurrent streams each) and returns req/s. */
async function h2load(url, seconds) {
  const args = ['-c16', '-m16', '-t1', `-D${seconds}`, url]
  const out = await run('h2load', args, { timeoutMs: seconds * 1000 + 15_000 })
  const rate = /finished in [\d.]+\w*, ([\d.]+) req\/s/.exec(out)
  if (!rate) throw new Error(`cannot find req/s in the output of h2load:\n${out}`)
  const status = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out)
  if (status && (Number(status[3]) > 0 || Number(status[4]) > 0)) throw new Error(`h2load saw errors: ${status[0]}`)
  return Number(rate[1])
}

/** Makes sure `wrk` and `h2load` are on PATH, installing the Debian packages if they are not. */
export function ensureWrk() {
  return ensureTools({ wrk: 'wrk', h2load: 'nghttp2-client' })
}

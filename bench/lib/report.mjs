// Turns the measurements into the ratio table and the results JSON.
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { OUT_DIR, SECONDS } from './config.mjs'

/**
 * The rows of the table: [label, scenario key, peer subject, lower is better, our subject]; our
 * subject is hypersock unless the row names a variant of it. The ratio always reads "times better than the peer": hypersock / peer, or
 * peer / hypersock where lower is better (memory).
 */
const ROWS = [
  ['HTTP hello world req/s (wrk -c64)', 'http-hello', 'node:http'],
  ['HTTP hello world req/s (wrk -c64)', 'http-hello', 'fastify'],
  ['HTTP hello world req/s (wrk -c64)', 'http-hello', 'uWebSockets'],
  ['HTTP hello world req/s (wrk -c64)', 'http-hello', 'hyper (pure Rust)'],
  ['HTTP 1 KiB JSON POST echo req/s (wrk -c64)', 'http-json', 'node:http'],
  ['HTTP 1 KiB JSON POST echo req/s (wrk -c64)', 'http-json', 'fastify'],
  ['HTTP 1 KiB JSON POST echo req/s (wrk -c64)', 'http-json', 'uWebSockets'],
  ['HTTP 1 KiB JSON POST echo req/s (wrk -c64)', 'http-json', 'hyper (pure Rust)'],
  [
    'HTTP static route req/s, answered in Rust (wrk -c64)',
    'http-static-route',
    'uWebSockets',
    false,
    'hypersock static route',
  ],
  [
    'HTTP Response form vs string form req/s (wrk -c64)',
    'http-static-route',
    'hypersock string',
    false,
    'hypersock Response',
  ],
  ['HTTP route with a :param req/s (wrk -c64)', 'http-param-route', 'uWebSockets'],
  ['HTTP 4 KiB file req/s (wrk -c64)', 'http-file-4k', '@fastify/static'],
  ['HTTP 4 KiB file req/s (wrk -c64)', 'http-file-4k', 'nginx (1 worker)'],
  ['HTTP 1 MiB file req/s (wrk -c64)', 'http-file-1m', '@fastify/static'],
  ['HTTP 1 MiB file req/s (wrk -c64)', 'http-file-1m', 'nginx (1 worker)'],
  ['HTTP/2 hello world req/s (h2load h2c, 16x16)', 'http2-hello', 'node:http2'],
  ['HTTP/2 hello world req/s (h2load h2c, 16x16)', 'http2-hello', 'hyper (pure Rust)'],
  ['WebSocket echo msgs/s, 32 B text (100 conns)', 'ws-echo-32', 'ws'],
  ['WebSocket echo msgs/s, 16 KiB binary (100 conns)', 'ws-echo-16k', 'ws'],
  ['WebSocket echo msgs/s, 32 B text (100 conns)', 'ws-echo-32', 'uWebSockets'],
  ['WebSocket echo msgs/s, 16 KiB binary (100 conns)', 'ws-echo-16k', 'uWebSockets'],
  ['WebSocket echo msgs/s, 32 B text (100 conns)', 'ws-echo-32', 'raw Rust ceiling'],
  ['WebSocket echo msgs/s, 16 KiB binary (100 conns)', 'ws-echo-16k', 'raw Rust ceiling'],
  ['WebSocket echo msgs/s, 32 B text, permessage-deflate', 'ws-echo-32-deflate', 'ws'],
  ['WebSocket echo msgs/s, 32 B text, permessage-deflate', 'ws-echo-32-deflate', 'uWebSockets'],
  ['WebSocket echo msgs/s, 16 KiB text, permessage-deflate', 'ws-echo-16k-deflate', 'ws'],
  ['WebSocket echo msgs/s, 16 KiB text, permessage-deflate', 'ws-echo-16k-deflate', 'uWebSockets'],
  [
    'WebSocket RSS bytes per idle connection, anonymous memory (lower is better)',
    'ws-idle-rss-bytes-per-conn',
    'ws',
    true,
  ],
  [
    'WebSocket RSS bytes per idle connection, anonymous memory (lower is better)',
    'ws-idle-rss-bytes-per-conn',
    'uWebSockets',
    true,
  ],
  [
    'WebSocket RSS bytes per idle connection, anonymous memory, scale run: 100,000 or the descriptor limit (lower is better)',
    'ws-scale-rss-bytes-per-conn',
    'ws',
    true,
  ],
  [
    'WebSocket RSS bytes per idle connection, anonymous memory, scale run: 100,000 or the descriptor limit (lower is better)',
    'ws-scale-rss-bytes-per-conn',
    'uWebSockets',
    true,
  ],
  ['WebSocket: time to open the scale run (ms, lower is better)', 'ws-scale-open-ms', 'ws', true],
  ['WebSocket: time to open the scale run (ms, lower is better)', 'ws-scale-open-ms', 'uWebSockets', true],
  [
    'HTTP/1.1 RSS bytes per idle keep-alive connection, anonymous memory (lower is better)',
    'http-idle-rss-bytes-per-conn',
    'node:http',
    true,
  ],
  [
    'HTTP/1.1 RSS bytes per idle keep-alive connection, anonymous memory (lower is better)',
    'http-idle-rss-bytes-per-conn',
    'uWebSockets',
    true,
  ],
  [
    'WebSocket: time to open 1,000 over one HTTP/2 connection vs one TLS connection each (ms, lower is better)',
    'ws-h2-open-ms',
    'hypersock over HTTP/1.1',
    true,
    'hypersock over HTTP/2',
  ],
  [
    'WebSocket: server RSS per socket, anonymous memory, HTTP/2 stream vs TLS connection (lower is better)',
    'ws-h2-rss-bytes-per-socket',
    'hypersock over HTTP/1.1',
    true,
    'hypersock over HTTP/2',
  ],
  [
    'WebSocket echo msgs/s, 1,000 sockets, HTTP/2 streams vs TLS connections',
    'ws-h2-echo',
    'hypersock over HTTP/1.1',
    false,
    'hypersock over HTTP/2',
  ],
  ['Client GET req/s, concurrency 1', 'client-get-c1', 'undici.request'],
  [
    'WebSocket echo msgs/s, 32 B, configure() readBufferSize 16 KiB (tuned / default)',
    'ws-echo-32-tuning',
    'hypersock',
    false,
    'hypersock readBufferSize 16 KiB',
  ],
  [
    'WebSocket echo msgs/s, 32 B, configure() readBufferSize 256 KiB (tuned / default)',
    'ws-echo-32-tuning',
    'hypersock',
    false,
    'hypersock readBufferSize 256 KiB',
  ],
  [
    'WebSocket echo msgs/s, 32 B, configure() workerThreads 2 (tuned / default)',
    'ws-echo-32-tuning',
    'hypersock',
    false,
    'hypersock workerThreads 2',
  ],
  [
    'WebSocket echo msgs/s, 16 KiB, configure() readBufferSize 16 KiB (tuned / default)',
    'ws-echo-16k-tuning',
    'hypersock',
    false,
    'hypersock readBufferSize 16 KiB',
  ],
  [
    'WebSocket echo msgs/s, 16 KiB, configure() readBufferSize 256 KiB (tuned / default)',
    'ws-echo-16k-tuning',
    'hypersock',
    false,
    'hypersock readBufferSize 256 KiB',
  ],
  [
    'WebSocket echo msgs/s, 16 KiB, configure() workerThreads 2 (tuned / default)',
    'ws-echo-16k-tuning',
    'hypersock',
    false,
    'hypersock workerThreads 2',
  ],
  ['Client GET req/s, concurrency 1', 'client-get-c1', 'global fetch'],
  ['Client GET req/s, concurrency 64', 'client-get-c64', 'undici.request'],
  ['Client GET req/s, concurrency 64', 'client-get-c64', 'global fetch'],
  [
    'Client GET req/s, concurrency 1, no-op beforeRequest hook (hooked / plain)',
    'client-get-c1',
    'hypersock',
    false,
    'hypersock +beforeRequest',
  ],
  [
    'Client GET req/s, concurrency 1, no-op afterResponse hook (hooked / plain)',
    'client-get-c1',
    'hypersock',
    false,
    'hypersock +afterResponse',
  ],
  [
    'Client GET req/s, concurrency 1, no-op beforeRetry + beforeRedirect hook (hooked / plain)',
    'client-get-c1',
    'hypersock',
    false,
    'hypersock +beforeRetry+beforeRedirect',
  ],
  [
    'Client GET req/s, concurrency 1, pass-through compose() interceptor (hooked / plain)',
    'client-get-c1',
    'hypersock',
    false,
    'hypersock +compose',
  ],
  [
    'Client GET req/s, concurrency 64, no-op beforeRequest hook (hooked / plain)',
    'client-get-c64',
    'hypersock',
    false,
    'hypersock +beforeRequest',
  ],
  [
    'Client GET req/s, concurrency 64, no-op afterResponse hook (hooked / plain)',
    'client-get-c64',
    'hypersock',
    false,
    'hypersock +afterResponse',
  ],
  [
    'Client GET req/s, concurrency 64, no-op beforeRetry + beforeRedirect hook (hooked / plain)',
    'client-get-c64',
    'hypersock',
    false,
    'hypersock +beforeRetry+beforeRedirect',
  ],
  [
    'Client GET req/s, concurrency 64, pass-through compose() interceptor (hooked / plain)',
    'client-get-c64',
    'hypersock',
    false,
    'hypersock +compose',
  ],
  ['Client 100 MiB body MB/s (streamed)', 'client-body-100mb', 'undici.request'],
  ['Client 100 MiB body MB/s (streamed)', 'client-body-100mb', 'global fetch'],
  ['Client HTTPS GET req/s, concurrency 64', 'client-https-c64', 'undici.request'],
  ['Client HTTPS GET req/s, concurrency 64', 'client-https-c64', 'global fetch'],
  ['Client HTTP/2 GET req/s, 64 streams (TLS)', 'client-h2-c64', 'undici.request'],
  ['Client HTTP/2 GET req/s, 64 streams (TLS; fetch stays on HTTP/1.1)', 'client-h2-c64', 'global fetch'],
  ['Hub fan-out deliveries/s, 1 publish to 10k conns', 'hub-fanout-10k', 'ws'],
  ['Hub fan-out deliveries/s, 1 publish to 10k conns', 'hub-fanout-10k', 'uWebSockets'],
  ['Hub fan-out deliveries/s, 1 publish to 10k conns', 'hub-fanout-10k', 'raw Rust ceiling'],
  [
    'Hub fan-out deliveries/s, 1 publish to 10k conns, HYPERSOCK_WORKER_THREADS=2',
    'hub-fanout-10k',
    'uWebSockets',
    false,
    'hypersock (2 I/O threads)',
  ],
  ['JS thread µs per publish to 10k conns (lower is better)', 'hub-publish-js-thread', 'ws', true],
  ['JS thread µs per publish to 10k conns (lower is better)', 'hub-publish-js-thread', 'uWebSockets', true],
  ['KiB RSS per idle WebSocket, 10k conns (lower is better)', 'idle-memory-10k', 'ws', true],
  ['KiB RSS per idle WebSocket, 10k conns (lower is better)', 'idle-memory-10k', 'uWebSockets', true],
  [
    'Hub scale run: ms until every receiver has one publish (100,000 or the descriptor limit; lower is better)',
    'hub-scale-publish-ms',
    'ws',
    true,
  ],
  [
    'Hub scale run: ms until every receiver has one publish (100,000 or the descriptor limit; lower is better)',
    'hub-scale-publish-ms',
    'uWebSockets',
    true,
  ],
  ['Hub scale run: JS thread µs in that publish (lower is better)', 'hub-scale-publish-js-us', 'ws', true],
  ['Hub scale run: JS thread µs in that publish (lower is better)', 'hub-scale-publish-js-us', 'uWebSockets', true],
  [
    'Hub scale run: % of a core while idle with a heartbeat every 4 s (lower is better)',
    'hub-scale-heartbeat-cpu',
    'ws',
    true,
  ],
  [
    'Hub scale run: % of a core while idle with a heartbeat every 4 s (lower is better)',
    'hub-scale-heartbeat-cpu',
    'uWebSockets',
    true,
  ],
  ['Hub 100-member room chat, deliveries/s (32 B)', 'hub-room-100', 'ws'],
  ['Hub 100-member room chat, deliveries/s (32 B)', 'hub-room-100', 'uWebSockets'],
  ['Hub publish latency through Redis, p50 µs (lower is better)', 'hub-redis-p50-us', 'one process, no Redis', true],
  ['Hub publish latency through Redis, p99 µs (lower is better)', 'hub-redis-p99-us', 'one process, no Redis', true],
  [
    'Hub publish latency through a Redis Stream, p50 µs (lower is better)',
    'hub-redis-p50-us',
    'one process, no Redis',
    true,
    'hypersock streams',
  ],
  [
    'Hub publish latency through a Redis Stream, p99 µs (lower is better)',
    'hub-redis-p99-us',
    'one process, no Redis',
    true,
    'hypersock streams',
  ],
  ['Hub messages/s through Redis pub/sub, 3 processes', 'hub-redis-msgs-per-s', 'one process, no Redis'],
  [
    'Hub publish latency through a Redis Cluster (sharded pub/sub), p50 µs (lower is better)',
    'hub-redis-p50-us',
    'one process, no Redis',
    true,
    'hypersock cluster',
  ],
  [
    'Hub publish latency through a Redis Cluster (sharded pub/sub), p99 µs (lower is better)',
    'hub-redis-p99-us',
    'one process, no Redis',
    true,
    'hypersock cluster',
  ],
  [
    'Hub messages/s through a Redis Cluster (sharded pub/sub), 3 processes',
    'hub-redis-msgs-per-s',
    'one process, no Redis',
    false,
    'hypersock cluster',
  ],
  [
    'Hub publish latency through a Redis Cluster (stream), p50 µs (lower is better)',
    'hub-redis-p50-us',
    'one process, no Redis',
    true,
    'hypersock streams cluster',
  ],
  [
    'Hub publish latency through a Redis Cluster (stream), p99 µs (lower is better)',
    'hub-redis-p99-us',
    'one process, no Redis',
    true,
    'hypersock streams cluster',
  ],
  [
    'Hub messages/s through a Redis Cluster (stream), 3 processes',
    'hub-redis-msgs-per-s',
    'one process, no Redis',
    false,
    'hypersock streams cluster',
  ],
  [
    'Hub messages/s through a Redis Stream, 3 processes',
    'hub-redis-msgs-per-s',
    'one process, no Redis',
    false,
    'hypersock streams',
  ],
]

const number = (value) =>
  value == null ? 'error' : value < 100 ? value.toFixed(1) : Math.round(value).toLocaleString('en-US')

/** A pure-Rust server or loop measured in a scenario: the most this machine does for it. */
const isCeiling = (subject) => /pure Rust|Rust ceiling/.test(subject ?? '')

/** `ours` against `theirs` as "times better", whichever way better points. */
function ratioOf(ours, theirs, lowerIsBetter) {
  if (lowerIsBetter) return ours && theirs != null ? theirs / ours : null
  return ours != null && theirs ? ours / theirs : null
}

/**
 * Builds the comparison rows from `measurements` (a list of { scenario, subject, value }); a
 * throughput row whose scenario measured a pure-Rust ceiling also gets hypersock's ratio to it.
 */
export function compare(measurements) {
  const find = (scenario, subject) => measurements.find((m) => m.scenario === scenario && m.subject === subject)
  return ROWS.map(([label, scenario, peer, lowerIsBetter = false, subject = 'hypersock']) => {
    const ours = find(scenario, subject)?.value ?? null
    const theirs = find(scenario, peer)?.value ?? null
    // A ceiling bounds throughput; its memory or JS-thread figures (ws-ceiling has no JS thread,
    // and keeps no state worth comparing) say nothing about what hypersock could reach.
    const ceiling = lowerIsBetter
      ? undefined
      : measurements.find((m) => m.scenario === scenario && isCeiling(m.subject))
    return {
      scenario: label,
      key: scenario,
      hypersock: ours,
      peer,
      peerValue: theirs,
      ratio: ratioOf(ours, theirs, lowerIsBetter),
      ...(ceiling && { ceiling: ceiling.subject, ceilingRatio: ratioOf(ours, ceiling.value ?? null, lowerIsBetter) }),
    }
  })
}

const times = (ratio) => (ratio == null ? 'n/a' : `${ratio.toFixed(2)}x`)

/** The markdown table: scenario | hypersock | peer | ratio | ratio to the pure-Rust ceiling. */
export function table(rows) {
  const lines = [
    '| scenario | hypersock | peer | ratio | vs pure-Rust ceiling |',
    '| --- | ---: | ---: | ---: | ---: |',
  ]
  for (const row of rows) {
    const ceiling = row.ceiling ? `${times(row.ceilingRatio)} (${row.ceiling})` : 'n/a'
    lines.push(
      `| ${row.scenario} | ${number(row.hypersock)} | ${number(row.peerValue)} (${row.peer}) | ${times(row.ratio)} | ${ceiling} |`,
    )
  }
  return lines.join('\n')
}

/** Scenario keys where a lower value is better (memory, latency, CPU). */
const LOWER_IS_BETTER = new Set(ROWS.filter((row) => row[3]).map((row) => row[1]))

/**
 * Every measurement of `before` and `after` (two results JSON files' contents) side by side:
 * | scenario | subject | before | after | change |, change as "times better" (so a memory row that
 * shrank reads above 1x). Measurements in only one of the runs are listed with n/a.
 */
export function compareRuns(before, after) {
  const key = (m) => `${m.scenario}\u0000${m.subject}`
  const old = new Map(before.measurements.map((m) => [key(m), m]))
  const seen = new Set()
  const lines = [
    `Before: ${before.startedAt} (${before.machine?.cpus ?? '?'} CPUs), after: ${after.startedAt} (${after.machine?.cpus ?? '?'} CPUs)`,
    '',
    '| scenario | subject | before | after | change |',
    '| --- | --- | ---: | ---: | ---: |',
  ]
  const line = (scenario, subject, a, b) => {
    const change = times(ratioOf(b?.value ?? null, a?.value ?? null, LOWER_IS_BETTER.has(scenario)))
    const cell = (m) => (m ? number(m.value) : 'n/a')
    lines.push(`| ${scenario} | ${subject ?? '(scenario)'} | ${cell(a)} | ${cell(b)} | ${change} |`)
  }
  for (const m of after.measurements) {
    seen.add(key(m))
    line(m.scenario, m.subject, old.get(key(m)), m)
  }
  for (const m of before.measurements) if (!seen.has(key(m))) line(m.scenario, m.subject, m, undefined)
  return lines.join('\n')
}

/** Reads a results JSON file written by {@link writeJson}. */
export function readResults(file) {
  const data = JSON.parse(readFileSync(file, 'utf8'))
  if (!Array.isArray(data.measurements)) throw new Error(`${file} is not a bench results file (no measurements)`)
  return data
}

/**
 * Writes everything to bench/.out/results.json, and a copy named after the start time that the
 * next runs leave alone (for `--compare`); returns both paths.
 */
export function writeJson(measurements, rows, startedAt) {
  mkdirSync(OUT_DIR, { recursive: true })
  const file = join(OUT_DIR, 'results.json')
  const kept = join(OUT_DIR, `results-${startedAt.replace(/[:.]/g, '-')}.json`)
  const machine = { node: process.version, platform: process.platform, arch: process.arch, cpus: cpus().length }
  const data = { startedAt, seconds: SECONDS, machine, measurements, comparisons: rows }
  const text = `${JSON.stringify(data, null, 2)}\n`
  writeFileSync(file, text)
  writeFileSync(kept, text)
  return [file, kept]
}

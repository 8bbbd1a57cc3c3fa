// Turns the measurements into the ratio table and the results JSON.
import { mkdirSync, writeFileSync } from 'node:fs'
import { cpus } from 'node:os'
import { join } from 'node:path'
import { OUT_DIR, SECONDS } from './config.mjs'

/** The rows of the table: [label, scenario key, peer subject]; hypersock is always the subject. */
const ROWS = [
  ['HTTP hello world req/s (wrk -c64)', 'http-hello', 'node:http'],
  ['HTTP hello world req/s (wrk -c64)', 'http-hello', 'hyper (pure Rust)'],
  ['WebSocket echo msgs/s, 32 B text (100 conns)', 'ws-echo-32', 'ws'],
  ['WebSocket echo msgs/s, 16 KiB binary (100 conns)', 'ws-echo-16k', 'ws'],
  ['WebSocket echo msgs/s, 32 B text (100 conns)', 'ws-echo-32', 'uWebSockets'],
  ['WebSocket echo msgs/s, 16 KiB binary (100 conns)', 'ws-echo-16k', 'uWebSockets'],
  ['WebSocket echo msgs/s, 32 B text, permessage-deflate', 'ws-echo-32-deflate', 'ws'],
  ['WebSocket echo msgs/s, 32 B text, permessage-deflate', 'ws-echo-32-deflate', 'uWebSockets'],
  ['WebSocket echo msgs/s, 16 KiB text, permessage-deflate', 'ws-echo-16k-deflate', 'ws'],
  ['WebSocket echo msgs/s, 16 KiB text, permessage-deflate', 'ws-echo-16k-deflate', 'uWebSockets'],
  ['WebSocket RSS bytes per idle connection (lower is better)', 'ws-idle-rss-bytes-per-conn', 'ws'],
  ['WebSocket RSS bytes per idle connection (lower is better)', 'ws-idle-rss-bytes-per-conn', 'uWebSockets'],
  ['Client GET req/s, concurrency 1', 'client-get-c1', 'undici.request'],
  ['Client GET req/s, concurrency 1', 'client-get-c1', 'global fetch'],
  ['Client GET req/s, concurrency 64', 'client-get-c64', 'undici.request'],
  ['Client GET req/s, concurrency 64', 'client-get-c64', 'global fetch'],
]

const number = (value) => (value == null ? 'error' : Math.round(value).toLocaleString('en-US'))

/** Builds the comparison rows from `measurements` (a list of { scenario, subject, value }). */
export function compare(measurements) {
  const find = (scenario, subject) => measurements.find((m) => m.scenario === scenario && m.subject === subject)
  return ROWS.map(([label, scenario, peer]) => {
    const ours = find(scenario, 'hypersock')?.value ?? null
    const theirs = find(scenario, peer)?.value ?? null
    const ratio = ours != null && theirs ? ours / theirs : null
    return { scenario: label, key: scenario, hypersock: ours, peer, peerValue: theirs, ratio }
  })
}

/** The markdown table: scenario | hypersock | peer | ratio. */
export function table(rows) {
  const lines = ['| scenario | hypersock | peer | ratio |', '| --- | ---: | ---: | ---: |']
  for (const row of rows) {
    const ratio = row.ratio == null ? 'n/a' : `${row.ratio.toFixed(2)}x`
    lines.push(`| ${row.scenario} | ${number(row.hypersock)} | ${number(row.peerValue)} (${row.peer}) | ${ratio} |`)
  }
  return lines.join('\n')
}

/** Writes everything to bench/.out/results.json and returns its path. */
export function writeJson(measurements, rows, startedAt) {
  mkdirSync(OUT_DIR, { recursive: true })
  const file = join(OUT_DIR, 'results.json')
  const machine = { node: process.version, platform: process.platform, arch: process.arch, cpus: cpus().length }
  const data = { startedAt, seconds: SECONDS, machine, measurements, comparisons: rows }
  writeFileSync(file, `${JSON.stringify(data, null, 2)}\n`)
  return file
}

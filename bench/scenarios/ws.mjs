// WebSocket echo msgs/s with 100 connections at 32 B and 16 KiB, with and without
// permessage-deflate: hypersock serve({ websocket }) vs the `ws` package vs uWebSockets.js, all
// loaded by the same Rust generator (ws-load), and without compression a pure-Rust ceiling (raw
// sockets, ws-ceiling). Then RSS per idle connection with 10 000 idle
// connections held by ws-load --idle.
import { readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { bin, node, SECONDS, WARMUP } from '../lib/config.mjs'
import { run, track, withServer } from '../lib/proc.mjs'

const SERVERS = [
  ['hypersock', ...node('servers/hypersock-ws.mjs')],
  ['ws', ...node('servers/ws-echo.mjs')],
  ['uWebSockets', ...node('servers/uws-echo.mjs')],
]

/** The ceiling of the echo runs without compression: raw sockets in Rust (ws-ceiling). */
const CEILING = ['raw Rust ceiling', bin('ws-ceiling'), ['--port', '0']]

/** 100 connections, 16 messages in flight on each. */
const RUNS = [
  { scenario: 'ws-echo-32', size: 32, binary: false, deflate: false },
  { scenario: 'ws-echo-16k', size: 16 * 1024, binary: true, deflate: false },
  { scenario: 'ws-echo-32-deflate', size: 32, binary: false, deflate: true },
  { scenario: 'ws-echo-16k-deflate', size: 16 * 1024, binary: false, deflate: true },
]

const IDLE_CONNECTIONS = Number(process.env.BENCH_IDLE_CONNECTIONS ?? 10_000)

/** Measures every server for each message size; `record` as in http.mjs. */
export async function wsEcho(record) {
  for (const { scenario, size, binary, deflate } of RUNS) {
    for (const [subject, command, baseArgs] of deflate ? SERVERS : [...SERVERS, CEILING]) {
      const args = deflate ? [...baseArgs, '--deflate'] : baseArgs
      await record(scenario, subject, () =>
        withServer(subject, command, args, async (port) => {
          const url = `ws://127.0.0.1:${port}/`
          await wsLoad(url, size, binary, deflate, WARMUP)
          return wsLoad(url, size, binary, deflate, SECONDS)
        }),
      )
    }
  }
}

/** RSS growth per idle connection (bytes; lower is better) with IDLE_CONNECTIONS open. */
export async function wsIdle(record) {
  for (const [subject, command, args] of SERVERS) {
    await record('ws-idle-rss-bytes-per-conn', subject, () =>
      withServer(subject, command, args, async (port, pid) => {
        const before = rss(pid)
        const load = track(bin('ws-load'), [
          '--url',
          `ws://127.0.0.1:${port}/`,
          '--idle',
          '--connections',
          String(IDLE_CONNECTIONS),
          '--connect-timeout-secs',
          '60',
          '--duration-secs',
          '120',
        ])
        try {
          const lines = createInterface({ input: load.stdout })
          for await (const line of lines) if (line.startsWith('READY')) break
          // Let the server settle (JS objects created, buffers released) before reading RSS.
          await new Promise((r) => setTimeout(r, 2000))
          const after = rss(pid)
          const perConn = (after - before) / IDLE_CONNECTIONS
          return { value: perConn, detail: `${IDLE_CONNECTIONS} idle, RSS ${mb(before)} -> ${mb(after)} MiB` }
        } finally {
          load.kill('SIGKILL')
        }
      }),
    )
  }
}

function rss(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = Number(/VmRSS:\s+(\d+) kB/.exec(status)?.[1])
  if (!kb) throw new Error(`cannot read the RSS of process ${pid}`)
  return kb * 1024
}

function mb(bytes) {
  return (bytes / 1024 / 1024).toFixed(1)
}

/** Runs the ws-load binary and returns the echoes per second it saw. */
async function wsLoad(url, size, binary, deflate, seconds) {
  const args = ['--url', url, '--connections', '100', '--pipeline', '16', '--size', String(size)]
  args.push('--duration-secs', String(seconds), ...(binary ? ['--binary'] : []), ...(deflate ? ['--deflate'] : []))
  const out = await run(bin('ws-load'), args, { timeoutMs: seconds * 1000 + 20_000 })
  const { rate } = JSON.parse(out.trim().split('\n').at(-1))
  return rate
}

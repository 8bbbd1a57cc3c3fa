// WebSocket echo msgs/s with 100 connections at 32 B and 16 KiB, with and without
// permessage-deflate: hypersock serve({ websocket }) vs the `ws` package vs uWebSockets.js, all
// loaded by the same Rust generator (ws-load), and without compression a pure-Rust ceiling (raw
// sockets, ws-ceiling). Then RSS per idle connection with 10 000 idle
// connections held by ws-load --idle.
import { execFileSync } from 'node:child_process'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { bin, node, OUT_DIR, ROOT, SECONDS, WARMUP } from '../lib/config.mjs'
import { growth, idleRssPerConnection, memory, run, track, withServer } from '../lib/proc.mjs'

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

/** The engine settings of `configure()`, each against the defaults, on the echo runs without compression. */
const TUNINGS = [
  ['hypersock readBufferSize 16 KiB', '--read-buffer=16384'],
  ['hypersock readBufferSize 256 KiB', '--read-buffer=262144'],
  ['hypersock workerThreads 2', '--workers=2'],
]

/** Echo msgs/s of hypersock with each of TUNINGS and with the defaults, in one run. */
export async function wsTuning(record) {
  for (const { scenario, size, binary } of RUNS.filter((r) => !r.deflate)) {
    for (const [subject, extra] of [['hypersock', null], ...TUNINGS]) {
      const [command, args] = node('servers/hypersock-ws.mjs', ...(extra ? [extra] : []))
      await record(`${scenario}-tuning`, subject, () =>
        withServer(subject, command, args, async (port) => {
          const url = `ws://127.0.0.1:${port}/`
          await wsLoad(url, size, binary, false, WARMUP)
          return wsLoad(url, size, binary, false, SECONDS)
        }),
      )
    }
  }
}

/** Anonymous RSS growth (`memory` in lib/proc.mjs) per idle connection (bytes; lower is better) with IDLE_CONNECTIONS open, 256 handshakes at a time. */
export async function wsIdle(record) {
  for (const [subject, command, args] of SERVERS) {
    await record('ws-idle-rss-bytes-per-conn', subject, () =>
      withServer(subject, command, args, (port, pid) =>
        idleRssPerConnection(
          pid,
          bin('ws-load'),
          [
            '--url',
            `ws://127.0.0.1:${port}/`,
            '--idle',
            '--connections',
            String(IDLE_CONNECTIONS),
            // As clients arrive at a busy server, not 10,000 handshakes at the same instant
            // (memory freed after such a burst stays with the allocator and blurs the row).
            '--connect-concurrency',
            '256',
            '--connect-timeout-secs',
            '60',
            '--duration-secs',
            '120',
          ],
          IDLE_CONNECTIONS,
        ),
      ),
    )
  }
}

const SCALE_CONNECTIONS = Number(process.env.BENCH_SCALE_CONNECTIONS ?? 100_000)
/** Loopback addresses the scale run connects from: about 28,000 ephemeral ports each. */
const SOURCES = ['127.0.0.2', '127.0.0.3', '127.0.0.4', '127.0.0.5', '127.0.0.6']

/** The hard limit on open descriptors of a process started here (what `ulimit -n` may reach). */
function descriptorLimit() {
  const out = execFileSync('sh', ['-c', 'ulimit -Hn'], { encoding: 'utf8' }).trim()
  return out === 'unlimited' ? Number.POSITIVE_INFINITY : Number(out)
}

/**
 * What a scale run (`name`, for its message) opens: SCALE_CONNECTIONS, or as many as the hard
 * descriptor limit allows (said on stderr); the descriptor limit its processes raise theirs to;
 * and the source addresses. Every address, whatever the count, to spread the ports: the
 * generators let `connect` pick each port (IP_BIND_ADDRESS_NO_PORT), so the ports a run leaves
 * in TIME_WAIT for a minute only block the same server port, never the next server's run.
 */
export function scaleRun(name) {
  const hard = descriptorLimit()
  const count = Math.min(SCALE_CONNECTIONS, hard - 1000)
  if (count < SCALE_CONNECTIONS) {
    console.error(
      `bench: ${name}: the descriptor hard limit is ${hard}; opening ${count} connections, not ${SCALE_CONNECTIONS}`,
    )
  }
  return { count, nofile: String(Math.min(hard, count + 1000)), sources: SOURCES }
}

/**
 * `[command, args]` running `command args` with its descriptor limit raised to `n`, or to the
 * hard limit when `n` is `'hard'`.
 */
export function withDescriptors(n, command, args) {
  const limit = n === 'hard' ? '"$(ulimit -Hn)"' : n
  return ['sh', ['-c', `ulimit -n ${limit} && exec "$0" "$@"`, command, ...args]]
}

/**
 * SCALE_CONNECTIONS (100,000) idle WebSockets on one server process: anonymous RSS growth per connection
 * and the time to open them all, 256 handshakes at a time from several loopback source
 * addresses. Server and generator raise their descriptor limit to match; where the hard limit is
 * lower (raising it needs CAP_SYS_RESOURCE), the run opens as many as it allows and says so.
 */
export async function wsScale(record) {
  const { count, nofile, sources } = scaleRun('wsScale')
  for (const [subject, command, args] of SERVERS) {
    let openMs
    await record('ws-scale-rss-bytes-per-conn', subject, () =>
      withServer(subject, ...withDescriptors(nofile, command, args), async (port, pid) => {
        const result = await idleRssPerConnection(
          pid,
          ...withDescriptors(nofile, bin('ws-load'), [
            '--url',
            `ws://127.0.0.1:${port}/`,
            '--idle',
            '--connections',
            String(count),
            '--connect-concurrency',
            '256',
            '--sources',
            sources.join(','),
            '--connect-timeout-secs',
            '240',
            '--duration-secs',
            '60',
          ]),
          count,
        )
        openMs = result.openMs
        return result
      }),
    )
    if (openMs !== undefined) {
      await record('ws-scale-open-ms', subject, () => ({ value: openMs, detail: `${count} connections` }))
    }
  }
}

const H2_SOCKETS = Number(process.env.BENCH_H2_SOCKETS ?? 1000)

/**
 * WebSocket over HTTP/2 (RFC 8441) vs HTTP/1.1, both over TLS to the hypersock server: H2_SOCKETS
 * hypersock client WebSockets as streams of one HTTP/2 connection (`http2: 'always'`) or with a
 * TCP + TLS connection each. Rows: time to open them all, server anonymous RSS growth per socket
 * (`memory` in lib/proc.mjs: without the code pages of the node binary, which page in as the
 * handlers get hot and are no cost of the sockets), echo
 * msgs/s with one 32-byte message in flight per socket. The HTTP/2 runs are the subject, the
 * HTTP/1.1 ones the peer. The RSS growth is read from after a warm-up of 100 sockets opened and
 * closed (so what is made on first use, and the one HTTP/2 connection, are not counted per
 * socket) to 2 s after the last of the H2_SOCKETS opens, as the idle rows are.
 */
export async function wsHttp2(record) {
  const { generateCertificate } = await import(join(ROOT, 'dist', 'testing.js'))
  const ca = generateCertificate({ isCa: true, commonName: 'hypersock bench CA' })
  const caFile = join(OUT_DIR, 'ws-h2-ca.pem')
  const certFile = join(OUT_DIR, 'ws-h2-cert.json')
  writeFileSync(caFile, ca.cert)
  writeFileSync(certFile, JSON.stringify(generateCertificate({ ca })))
  const [command, args] = node('servers/hypersock-ws.mjs', `--cert=${certFile}`)
  for (const [subject, http2] of [
    ['hypersock over HTTP/2', 'always'],
    ['hypersock over HTTP/1.1', 'never'],
  ]) {
    const result = await withServer(subject, command, args, async (port, pid) => {
      const [clientCommand, clientArgs] = node(
        'clients/ws-h2.mjs',
        `--url=wss://127.0.0.1:${port}/`,
        `--ca=${caFile}`,
        `--http2=${http2}`,
        `--sockets=${H2_SOCKETS}`,
        `--seconds=${SECONDS}`,
      )
      const load = track(clientCommand, clientArgs)
      let stderr = ''
      load.stderr.on('data', (d) => {
        stderr = (stderr + d).slice(-2000)
      })
      // Bounded: a client that hangs is killed, and the run fails.
      const timer = setTimeout(() => load.kill('SIGKILL'), (90 + SECONDS) * 1000)
      const lines = createInterface({ input: load.stdout })
      let openMs
      let before
      let after
      let last
      for await (const line of lines) {
        if (line === 'WARM') {
          // The warm-up's sockets are closed: the server has run every path once.
          await new Promise((r) => setTimeout(r, 1000))
          before = memory(pid)
          load.stdin.write('go\n')
        } else if (line.startsWith('OPEN ')) {
          openMs = Number(line.slice(5))
          // Let the server settle before reading its RSS, then start the echo run.
          await new Promise((r) => setTimeout(r, 2000))
          after = memory(pid)
          load.stdin.write('go\n')
        } else if (line.startsWith('{')) last = JSON.parse(line)
      }
      clearTimeout(timer)
      if (before === undefined || openMs === undefined || !last)
        throw new Error(`ws-h2 client (${http2}) gave no result\n${stderr}`)
      return { openMs, perSocket: (after.anon - before.anon) / H2_SOCKETS, rate: last.rate, before, after }
    })
    const detail = `${H2_SOCKETS} sockets, ${growth(result.before, result.after)}`
    await record('ws-h2-open-ms', subject, () => ({ value: result.openMs, detail }))
    await record('ws-h2-rss-bytes-per-socket', subject, () => ({ value: result.perSocket, detail }))
    await record('ws-h2-echo', subject, () => result.rate)
  }
}

/** Runs the ws-load binary and returns the echoes per second it saw. */
async function wsLoad(url, size, binary, deflate, seconds) {
  const args = ['--url', url, '--connections', '100', '--pipeline', '16', '--size', String(size)]
  args.push('--duration-secs', String(seconds), ...(binary ? ['--binary'] : []), ...(deflate ? ['--deflate'] : []))
  const out = await run(bin('ws-load'), args, { timeoutMs: seconds * 1000 + 20_000 })
  const { rate } = JSON.parse(out.trim().split('\n').at(-1))
  return rate
}

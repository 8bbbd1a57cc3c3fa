// Hub fan-out: one publish to 10,000 subscribed connections, time until every receiver has it,
// with hypersock's Hub (framed once, queued in Rust), `ws` (a loop over the clients) and
// uWebSockets.js (`app.publish`); plus each server's memory for the same idle connections.
// The connections are held by the Rust load generator ws-fanout. Both sides raise their
// descriptor limit to the hard limit (`ulimit -n`) first.
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { bin, node, SECONDS, WARMUP } from '../lib/config.mjs'
import { ensureTools, freePort, run, spawnRedis, withServer } from '../lib/proc.mjs'
import { startCluster } from '../lib/redis.mjs'
import { scaleRun, withDescriptors } from './ws.mjs'

/** Receivers per publish (`HUB_CONNECTIONS`, default 10,000). */
const CONNECTIONS = Number(process.env.HUB_CONNECTIONS ?? 10_000)
const ROUNDS = 20

const [nodePath, fanoutArgs] = node('servers/hypersock-fanout.mjs')
const SERVERS = [
  ['hypersock', nodePath, fanoutArgs],
  // On a 2-core machine the default is one I/O thread (cores - 1); a fan-out is kernel sends,
  // which a second I/O thread spreads over both cores.
  ['hypersock (2 I/O threads)', 'env', ['HYPERSOCK_WORKER_THREADS=2', nodePath, ...fanoutArgs]],
  ['ws', ...node('servers/ws-fanout.mjs')],
  ['uWebSockets', ...node('servers/uws-fanout.mjs')],
  // The ceiling: one loop of non-blocking writes of a ready frame over raw sockets (ws-ceiling).
  ['raw Rust ceiling', bin('ws-ceiling'), ['--port', '0']],
]

/** Measures fan-out (deliveries/s at the median round) and idle memory for every server. */
export async function hubFanout(record) {
  for (const [subject, command, args] of SERVERS) {
    let result
    await record('hub-fanout-10k', subject, async () => {
      const [cmd, cmdArgs] = withDescriptors('hard', command, args)
      result = await withServer(subject, cmd, cmdArgs, (port) => fanout(`ws://127.0.0.1:${port}/`))
      return {
        value: (result.connections / result.p50_ms) * 1000,
        detail: `p50 ${result.p50_ms.toFixed(2)} ms, min ${result.min_ms.toFixed(2)} ms to ${result.connections} receivers`,
      }
    })
    await record('hub-publish-js-thread', subject, async () => {
      if (!result) throw new Error('no fan-out run')
      // Lower is better: microseconds the event loop is blocked by one publish to 10k receivers.
      return { value: result.js_publish_us, detail: `${result.js_publish_us} µs of JS thread per publish` }
    })
    await record('idle-memory-10k', subject, async () => {
      if (!result) throw new Error('no fan-out run to read the memory from')
      const kib = result.bytes_per_connection / 1024
      return {
        value: kib,
        detail: `${kib.toFixed(1)} KiB RSS per idle connection (${(result.rss_loaded / 2 ** 20).toFixed(0)} MiB with ${result.connections})`,
      }
    })
  }
}

/** The heartbeat interval of the scale run's servers (ms) and its measuring window (s). */
const SCALE_PING_MS = 4_000
const SCALE_HEARTBEAT_SECS = 12

/**
 * The Hub at scale: SCALE_CONNECTIONS (100,000, or as many as the descriptor limit allows)
 * subscribed connections on one process, opened from several loopback addresses, with the
 * server's heartbeat on (a ping every 4 s: hypersock's built-in one, the timer loop `ws`
 * documents, uWebSockets' automatic pings). Rows: time until every receiver has one publish and
 * the JS thread's time in it, then a heartbeat window with no publish: pings answered, and the
 * server's CPU while it lasts.
 */
export async function hubScale(record) {
  const { count, nofile, sources } = scaleRun('hubScale')
  for (const [subject, command, args] of SERVERS.filter(([s]) => ['hypersock', 'ws', 'uWebSockets'].includes(s))) {
    let result
    await record('hub-scale-publish-ms', subject, async () => {
      const [cmd, cmdArgs] = withDescriptors(nofile, 'env', [`FANOUT_PING_MS=${SCALE_PING_MS}`, command, ...args])
      result = await withServer(subject, cmd, cmdArgs, (port) =>
        fanout(`ws://127.0.0.1:${port}/`, {
          connections: count,
          rounds: 5,
          nofile,
          extra: ['--sources', sources.join(','), '--heartbeat-secs', String(SCALE_HEARTBEAT_SECS)],
        }),
      )
      return {
        value: result.p50_ms,
        detail: `p50 of 5 publishes to ${count} receivers, min ${result.min_ms.toFixed(1)} ms`,
      }
    })
    if (!result) continue
    await record('hub-scale-publish-js-us', subject, () => ({
      value: result.js_publish_us,
      detail: `µs of JS thread in one publish to ${count}`,
    }))
    await record('hub-scale-heartbeat-cpu', subject, () => {
      // A missed pong closes its connection; the two counters are read while pongs are being
      // written, so they may differ by the few in flight.
      const lost = count - result.subscribed_after_heartbeat
      if (lost !== 0 || result.heartbeat_pings === 0) {
        throw new Error(`heartbeat: ${result.heartbeat_pings} pings, ${result.heartbeat_pongs} pongs, ${lost} closed`)
      }
      const percent = (result.heartbeat_cpu_ms / (result.heartbeat_secs * 1000)) * 100
      return {
        value: percent,
        detail: `${percent.toFixed(1)}% of a core over ${result.heartbeat_secs} s: ${result.heartbeat_pings} pings answered by ${count} idle connections, none closed`,
      }
    })
  }
}

async function fanout(url, { connections = CONNECTIONS, rounds = ROUNDS, nofile, extra = [] } = {}) {
  const fanoutArgs = ['--url', url, '--connections', String(connections), '--rounds', String(rounds), ...extra]
  const [cmd, args] = nofile
    ? withDescriptors(nofile, bin('ws-fanout'), fanoutArgs)
    : withDescriptors('hard', bin('ws-fanout'), fanoutArgs)
  const out = await run(cmd, args, { timeoutMs: 300_000 })
  return JSON.parse(out.trim().split('\n').at(-1))
}

const ROOM_SERVERS = [
  ['hypersock', ...node('servers/hypersock-room.mjs')],
  ['ws', ...node('servers/ws-room.mjs')],
  ['uWebSockets', ...node('servers/uws-room.mjs')],
]

/**
 * A 100-member room chat: every member sends 32 B messages (4 in flight each) that the server
 * publishes to the whole room, sender included; deliveries/s received by the members (ws-load
 * --room: a member sends its next message when its own copy comes back).
 */
export async function hubRoomChat(record) {
  for (const [subject, command, args] of ROOM_SERVERS) {
    await record('hub-room-100', subject, () =>
      withServer(subject, command, args, async (port) => {
        const url = `ws://127.0.0.1:${port}/`
        await roomLoad(url, WARMUP)
        const rate = await roomLoad(url, SECONDS)
        return { value: rate, detail: `${Math.round(rate / 100)} messages/s published to 100 members` }
      }),
    )
  }
}

async function roomLoad(url, seconds) {
  const args = ['--url', url, '--room', '--connections', '100', '--pipeline', '4', '--size', '32']
  args.push('--duration-secs', String(seconds))
  const out = await run(bin('ws-load'), args, { timeoutMs: seconds * 1000 + 20_000 })
  return JSON.parse(out.trim().split('\n').at(-1)).rate
}

/** Publishes timed per latency run, after `LATENCY_WARMUP` untimed ones. */
const LATENCY_SAMPLES = 1000
const LATENCY_WARMUP = 50

/**
 * Cross-process fan-out latency through Redis: a client of process A sends, A publishes to the
 * room, Redis relays, process B delivers to its client; p50 and p99 over sequential messages.
 * The same run with both clients on one process (no Redis) is the reference.
 */
export async function hubRedisLatency(record) {
  await ensureTools({ 'redis-server': 'redis-server' })
  const port = await freePort()
  const redis = spawnRedis(port)
  try {
    await waitForOutput(redis, /Ready to accept connections/, 10_000)
    const url = `redis://127.0.0.1:${port}`
    // Three processes on one Redis: latency from a client of A to a client of B (C's client in
    // the room too), then a burst's throughput to B.
    await acrossThree(record, 'hypersock', url, `bench-${port}-p`, [])
    await acrossThree(record, 'hypersock streams', url, `bench-${port}-s`, ['streams'])
    // The same through a Redis Cluster (3 primaries, 3 replicas, no persistence).
    const dir = mkdtempSync(join(tmpdir(), 'hypersock-bench-cluster-'))
    let cluster
    try {
      cluster = await startCluster(dir, ['--appendonly', 'no'])
      const seeds = cluster.ports.map((p) => `redis://127.0.0.1:${p}`).join(',')
      await acrossThree(record, 'hypersock cluster', seeds, 'bench-p', [])
      await acrossThree(record, 'hypersock streams cluster', seeds, 'bench-s', ['streams'])
    } finally {
      for (const n of cluster?.nodes.values() ?? []) n.kill('SIGKILL')
      rmSync(dir, { recursive: true, force: true })
    }
    const [command, argsLocal] = node('servers/hypersock-room.mjs')
    let local
    await record('hub-redis-p50-us', 'one process, no Redis', async () => {
      local = await withServer('hypersock', command, argsLocal, (p) =>
        latencyAndRate(`ws://127.0.0.1:${p}/`, `ws://127.0.0.1:${p}/`),
      )
      return { value: local.p50, detail: `p99 ${local.p99} µs` }
    })
    await record('hub-redis-p99-us', 'one process, no Redis', async () => {
      if (!local) throw new Error('no latency run')
      return local.p99
    })
    await record('hub-redis-msgs-per-s', 'one process, no Redis', async () => {
      if (!local) throw new Error('no latency run')
      return local.rate
    })
  } finally {
    redis.kill('SIGKILL')
  }
}

/**
 * Records latency and throughput ({@link latencyAndRate}) across three room servers relaying
 * through `redis` (a URL, or a cluster's URLs joined by commas) on `channel` in `mode`.
 */
async function acrossThree(record, subject, redis, channel, mode) {
  const [command, args] = node('servers/hypersock-room.mjs', redis, channel, ...mode)
  let across
  await record('hub-redis-p50-us', subject, async () => {
    across = await withServer(`${subject} A`, command, args, (portA) =>
      withServer(`${subject} B`, command, args, (portB) =>
        withServer(`${subject} C`, command, args, (portC) =>
          latencyAndRate(`ws://127.0.0.1:${portA}/`, `ws://127.0.0.1:${portB}/`, `ws://127.0.0.1:${portC}/`),
        ),
      ),
    )
    return { value: across.p50, detail: `p99 ${across.p99} µs, ${LATENCY_SAMPLES} messages, three processes` }
  })
  await record('hub-redis-p99-us', subject, async () => {
    if (!across) throw new Error('no latency run')
    return across.p99
  })
  await record('hub-redis-msgs-per-s', subject, async () => {
    if (!across) throw new Error('no latency run')
    return { value: across.rate, detail: `${BURST} messages from A's client, counted at B's` }
  })
}

/** Messages of the throughput burst. */
const BURST = 20_000

/**
 * Latency ({@link latency}) from `fromUrl` to `toUrl` (with a third member at `otherUrl`), then
 * the rate of a burst of {@link BURST} messages sent at once, counted on arrival at `toUrl`.
 */
async function latencyAndRate(fromUrl, toUrl, otherUrl) {
  const other = otherUrl ? new WebSocket(otherUrl) : undefined
  if (other) await once(other, 'open')
  try {
    const { p50, p99 } = await latency(fromUrl, toUrl)
    const from = new WebSocket(fromUrl)
    const to = new WebSocket(toUrl)
    try {
      await Promise.all([once(from, 'open'), once(to, 'open')])
      // Joined in the open handler: wait for a probe before the burst.
      const probe = new Promise((resolve) => to.once('message', resolve))
      from.send('probe')
      await probe
      let got = 0
      const done = new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`only ${got} of ${BURST} arrived within 60 s`)), 60_000)
        to.on('message', (data) => {
          if (data.toString().startsWith('b') && ++got === BURST) {
            clearTimeout(timer)
            resolve()
          }
        })
      })
      const start = performance.now()
      for (let i = 0; i < BURST; i++) from.send(`b${i}`)
      await done
      return { p50, p99, rate: BURST / ((performance.now() - start) / 1000) }
    } finally {
      from.terminate()
      to.terminate()
    }
  } finally {
    other?.terminate()
  }
}

/** Sends messages one at a time through `from` and times their arrival at `to` (µs). */
async function latency(fromUrl, toUrl) {
  const from = new WebSocket(fromUrl)
  const to = new WebSocket(toUrl)
  try {
    await Promise.all([once(from, 'open'), once(to, 'open')])
    let waiting
    to.on('message', (data) => {
      if (waiting && data.toString() === waiting.text) waiting.resolve(performance.now())
    })
    const one = (text, ms = 5000) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`"${text}" did not arrive within ${ms} ms`)), ms)
        waiting = {
          text,
          resolve: (at) => {
            clearTimeout(timer)
            resolve(at)
          },
        }
        from.send(text)
      })
    // A server joins its client to the room in its open handler, which may run just after the
    // client has seen the handshake: probe until a message gets through (bounded).
    for (let attempt = 0; ; attempt++) {
      try {
        await one(`probe${attempt}`, 200)
        break
      } catch (e) {
        if (attempt >= 25) throw e
      }
    }
    const samples = []
    for (let i = 0; i < LATENCY_WARMUP + LATENCY_SAMPLES; i++) {
      const sent = performance.now()
      const arrived = await one(`m${i}`)
      if (i >= LATENCY_WARMUP) samples.push((arrived - sent) * 1000)
    }
    samples.sort((x, y) => x - y)
    const at = (q) => Math.round(samples[Math.min(samples.length - 1, Math.floor(samples.length * q))])
    return { p50: at(0.5), p99: at(0.99) }
  } finally {
    from.terminate()
    to.terminate()
  }
}

/** Resolves once `child` prints a line matching `pattern`; fails after `timeoutMs`. */
function waitForOutput(child, pattern, timeoutMs) {
  return new Promise((resolve, reject) => {
    let text = ''
    const timer = setTimeout(
      () => reject(new Error(`no ${pattern} from redis-server within ${timeoutMs} ms`)),
      timeoutMs,
    )
    child.stdout.on('data', (chunk) => {
      text += chunk
      if (pattern.test(text)) {
        clearTimeout(timer)
        resolve()
      }
    })
    child.exited.then(() => {
      clearTimeout(timer)
      reject(new Error('redis-server exited'))
    })
  })
}

// `npm run bench:outage`: what each RedisAdapter mode loses across an outage. Two hypersock
// room servers (bench/servers/hypersock-room.mjs) per mode, A and B, share one redis-server that
// keeps an append-only file synced on every write; B reaches it through a TCP relay in this
// process. A client of A sends 10,000 messages at 500/s (each published to the room by A); at
// 10 s the outage starts and at 13 s it ends. Clients of A and B count what they received: lost,
// duplicated, out of order. Both modes run at once, on their own channels. Three runs:
// - crash: `kill -9` of redis-server, restarted (reloading its file) 3 s later;
// - partition: B's connections to Redis are cut and refused for 3 s; Redis and A carry on;
// - failover: on a Redis Cluster (3 primaries, 3 replicas, cluster-node-timeout 1 s), `kill -9`
//   of the primary serving the pub/sub room's channel and the stream; its replica takes over by itself.
// Loopback only; about a minute.
// Env: OUTAGE_MESSAGES (10000), OUTAGE_RATE (500/s), OUTAGE_KILL_S (10), OUTAGE_RESTART_S (13).
import { once } from 'node:events'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import WebSocket from 'ws'
import { node } from './lib/config.mjs'
import { ensureTools, freePort, killAll, startServer } from './lib/proc.mjs'
import { primaryOf, startCluster, startRedis } from './lib/redis.mjs'

const MESSAGES = Number(process.env.OUTAGE_MESSAGES ?? 10_000)
const RATE = Number(process.env.OUTAGE_RATE ?? 500)
const KILL_MS = Number(process.env.OUTAGE_KILL_S ?? 10) * 1000
const RESTART_MS = Number(process.env.OUTAGE_RESTART_S ?? 13) * 1000

process.on('exit', killAll)

/** A client that records the messages it receives (`m<n>`), with a way to wait for a count. */
async function receiver(url) {
  const ws = new WebSocket(url)
  const got = []
  ws.on('message', (d) => got.push(d.toString()))
  await once(ws, 'open')
  return { ws, got }
}

/** Lost, duplicated and out-of-order messages among `got`, of `m0`..`m<MESSAGES-1>`. */
function tally(got) {
  const seen = new Set()
  let duplicates = 0
  let reordered = 0
  let last = -1
  for (const text of got) {
    if (!text.startsWith('m')) continue
    const n = Number(text.slice(1))
    if (seen.has(n)) duplicates++
    else seen.add(n)
    if (n < last) reordered++
    last = Math.max(last, n)
  }
  return { lost: MESSAGES - seen.size, duplicates, reordered }
}

/** A TCP relay to `port` that can cut its connections and refuse new ones for a while. */
async function relay(port) {
  const sockets = new Set()
  let cut = false
  const server = net.createServer((client) => {
    if (cut) return client.destroy()
    const upstream = net.connect(port, '127.0.0.1')
    for (const s of [client, upstream]) {
      sockets.add(s)
      s.on('error', () => {})
      s.on('close', () => {
        sockets.delete(s)
        client.destroy()
        upstream.destroy()
      })
    }
    client.pipe(upstream)
    upstream.pipe(client)
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    port: server.address().port,
    cut() {
      cut = true
      for (const s of sockets) s.destroy()
    },
    heal() {
      cut = false
    },
    close() {
      server.close()
      for (const s of sockets) s.destroy()
    },
  }
}

async function run(outage) {
  const dir = mkdtempSync(join(tmpdir(), 'hypersock-outage-'))
  const port = await freePort()
  const cluster = outage === 'failover' ? await startCluster(dir) : undefined
  let redis = cluster ? undefined : await startRedis(port, dir)
  const toB = await relay(port)
  const modes = []
  // On the cluster, pub/sub's room channel (`<channel>#r#chat`) and the streams hub's stream on
  // one primary, so that one failover hits both.
  const channels = { pubsub: 'outage-pubsub', streams: 'outage-streams' }
  let victim
  if (cluster) {
    const via = cluster.ports[0]
    victim = primaryOf(via, `${channels.pubsub}#r#chat`)
    for (let k = 0; primaryOf(via, `{${channels.streams}}`) !== victim; k++) channels.streams = `outage-streams-${k}`
  }
  try {
    for (const mode of ['pubsub', 'streams']) {
      const server = (name, redisPort) => {
        const url = cluster
          ? cluster.ports.map((p) => `redis://127.0.0.1:${p}`).join(',')
          : `redis://127.0.0.1:${redisPort}`
        const [command, args] = node('servers/hypersock-room.mjs', url, channels[mode], mode)
        return startServer(`${mode} ${name}`, command, args)
      }
      const a = await server('A', port)
      const b = await server('B', cluster ? port : toB.port)
      const sender = new WebSocket(`ws://127.0.0.1:${a.port}/`)
      await once(sender, 'open')
      modes.push({
        mode,
        servers: [a, b],
        sender,
        onA: await receiver(`ws://127.0.0.1:${a.port}/`),
        onB: await receiver(`ws://127.0.0.1:${b.port}/`),
      })
    }
    // Joined in the servers' open handlers: let a probe through before the run.
    for (const m of modes) {
      m.sender.send('probe')
      while (!m.onB.got.includes('probe') || !m.onA.got.includes('probe')) await new Promise((r) => setTimeout(r, 10))
    }
    const start = performance.now()
    const killAt = start + KILL_MS
    const restartAt = start + RESTART_MS
    let killed = false
    let restarted = false
    for (let i = 0; i < MESSAGES; i++) {
      const due = start + (i * 1000) / RATE
      const now = performance.now()
      if (due > now) await new Promise((r) => setTimeout(r, due - now))
      if (!killed && performance.now() >= killAt) {
        killed = true
        if (outage === 'crash') {
          redis.kill('SIGKILL')
          await redis.exited
        } else if (outage === 'failover') {
          cluster.nodes.get(victim).kill('SIGKILL')
        } else toB.cut()
        console.error(`outage: ${outage} at ${((performance.now() - start) / 1000).toFixed(1)} s`)
      }
      if (killed && !restarted && performance.now() >= restartAt) {
        restarted = true
        if (outage === 'crash') redis = await startRedis(port, dir)
        else if (outage === 'partition') toB.heal()
        console.error(`outage: over at ${((performance.now() - start) / 1000).toFixed(1)} s`)
      }
      for (const m of modes) m.sender.send(`m${i}`)
    }
    // Let what is late arrive: until every receiver is complete, or 10 s pass without news.
    let quietSince = performance.now()
    let before = -1
    while (performance.now() - quietSince < 10_000) {
      const total = modes.reduce((n, m) => n + m.onA.got.length + m.onB.got.length, 0)
      if (total !== before) {
        before = total
        quietSince = performance.now()
      }
      if (modes.every((m) => tally(m.onA.got).lost === 0 && tally(m.onB.got).lost === 0)) break
      await new Promise((r) => setTimeout(r, 100))
    }
    for (const m of modes) {
      const a = tally(m.onA.got)
      const b = tally(m.onB.got)
      console.log(
        `| ${WHAT[outage]} | ${m.mode} | ${a.lost} / ${a.duplicates} / ${a.reordered} | ${b.lost} / ${b.duplicates} / ${b.reordered} |`,
      )
    }
  } finally {
    for (const m of modes) {
      for (const ws of [m.sender, m.onA.ws, m.onB.ws]) ws.terminate()
      for (const s of m.servers) await s.stop()
    }
    toB.close()
    redis?.kill('SIGKILL')
    for (const n of cluster?.nodes.values() ?? []) n.kill('SIGKILL')
    rmSync(dir, { recursive: true, force: true })
  }
}

const OUTAGE_S = (RESTART_MS - KILL_MS) / 1000
const WHAT = {
  crash: `redis-server \`kill -9\`, restarted ${OUTAGE_S} s later`,
  partition: `B's link to Redis cut for ${OUTAGE_S} s`,
  failover: 'Redis Cluster: `kill -9` of the primary, its replica takes over',
}

await ensureTools({ 'redis-server': 'redis-server' })
console.log(
  `${MESSAGES} messages at ${RATE}/s from a client of A; outage from ${KILL_MS / 1000} s to ${RESTART_MS / 1000} s; Redis with an append-only file, fsync always`,
)
console.log('')
console.log(
  '| outage | mode | members on A: lost / duplicated / out of order | members on B: lost / duplicated / out of order |',
)
console.log('| --- | --- | --- | --- |')
for (const outage of ['crash', 'partition', 'failover']) await run(outage)

// Redis servers for the benchmarks: one with an append-only file, or a Redis Cluster of six
// nodes on loopback, tracked like every child of the harness.
import { execFileSync } from 'node:child_process'
import net from 'node:net'
import { freePort, track } from './proc.mjs'

/**
 * A redis-server on 127.0.0.1:`port` keeping an append-only file in `dir`, synced on every write,
 * with `extra` arguments; resolves once it accepts connections.
 */
export async function startRedis(port, dir, extra = []) {
  const redis = track('redis-server', [
    '--port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--save',
    '',
    '--dir',
    dir,
    '--appendonly',
    'yes',
    '--appendfsync',
    'always',
    // Last, so that it can override the above.
    ...extra,
  ])
  let text = ''
  await new Promise((resolve, reject) => {
    redis.stdout.on('data', (chunk) => {
      text += chunk
      if (/Ready to accept connections/.test(text)) resolve()
    })
    redis.exited.then(() => reject(new Error(`redis-server exited: ${text.slice(-500)}`)))
  })
  return redis
}

const cli = (port, ...args) => execFileSync('redis-cli', ['-p', String(port), ...args], { timeout: 10_000 }).toString()

/** The port of the primary serving the slot of `name`, per the node on `via` (`CLUSTER NODES`). */
export function primaryOf(via, name) {
  const slot = Number(cli(via, 'cluster', 'keyslot', name))
  for (const line of cli(via, 'cluster', 'nodes').split('\n')) {
    const [, addr, flags, , , , , , ...slots] = line.split(' ')
    if (!addr || !/(^|,)master(,|$)/.test(flags) || /fail/.test(flags)) continue
    if (slots.some((r) => slot >= Number(r.split('-')[0]) && slot <= Number(r.split('-')[1] ?? r)))
      return Number(/:(\d+)@/.exec(addr)?.[1])
  }
  return undefined
}

/**
 * Six cluster nodes on loopback (ports whose bus port, +10000, is free too), made a cluster of
 * three primaries and three replicas; `extra` arguments for every node.
 */
export async function startCluster(dir, extra = []) {
  const ports = []
  while (ports.length < 6) {
    const port = await freePort()
    if (port + 10_000 > 65_535) continue
    const bus = net.createServer()
    const free = await new Promise((resolve) => {
      bus.once('error', () => resolve(false))
      bus.listen(port + 10_000, '127.0.0.1', () => bus.close(() => resolve(true)))
    })
    if (free) ports.push(port)
  }
  const nodes = new Map()
  for (const port of ports) {
    nodes.set(
      port,
      await startRedis(port, dir, [
        '--cluster-enabled',
        'yes',
        '--cluster-config-file',
        `nodes-${port}.conf`,
        '--cluster-node-timeout',
        '1000',
        '--appenddirname',
        `aof-${port}`,
        ...extra,
      ]),
    )
  }
  execFileSync(
    'redis-cli',
    ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes'],
    { timeout: 30_000 },
  )
  const ready = () =>
    ports.every((p) => {
      const info = cli(p, 'info', 'replication')
      return (
        /cluster_state:ok/.test(cli(p, 'cluster', 'info')) &&
        (/role:master/.test(info) || /master_link_status:up/.test(info))
      )
    })
  for (let i = 0; !ready(); i++) {
    if (i > 300) throw new Error('the Redis Cluster did not come up within 30 s')
    await new Promise((r) => setTimeout(r, 100))
  }
  return { ports, nodes }
}

// The Redis adapter on a real Redis Cluster: six redis-server processes on loopback (three
// primaries, three replicas, made with `redis-cli --cluster create`), three hypersock processes
// in pub/sub mode and three in streams mode (fixtures/hub-node.mjs with REDIS_CLUSTER). Checks
// delivery to every member once and in order per publisher, room sizes across processes, and a
// failover: the primary serving the hubs' slot is killed while messages flow, its replica takes
// over, and streams mode loses nothing while pub/sub's loss is reported.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Hub, type HypersockError, RedisAdapter, serveWebSocket } from 'hypersock'
import { generateCertificate } from 'hypersock/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort, joinRoomsFromQuery, trackServers } from './helpers.js'
import { member, type Proc, spawnRedis, startGroup } from './redis-procs.js'

const procs: Proc[] = []
let dir = ''
/** Port of each cluster node, and its process. */
const servers = new Map<number, Proc>()

/** A port free on loopback whose cluster bus port (+10000) is free too. */
async function clusterPort(): Promise<number> {
  for (;;) {
    const port = await freePort()
    if (port + 10_000 > 65_535) continue
    const bus = net.createServer()
    const ok = await new Promise<boolean>((resolve) => {
      bus.once('error', () => resolve(false))
      bus.listen(port + 10_000, '127.0.0.1', () => resolve(true))
    })
    if (ok) {
      await new Promise((r) => bus.close(r))
      return port
    }
  }
}

const cli = (port: number, ...args: string[]) =>
  execFileSync('redis-cli', ['-p', String(port), ...args], { timeout: 10_000 }).toString()

/** CRC16 (XModem) of the cluster's key hash, and the slot of a name with a `{tag}`. */
function slotOf(name: string): number {
  const tag = /\{([^}]+)\}/.exec(name)?.[1] ?? name
  let crc = 0
  for (const b of Buffer.from(tag)) {
    crc ^= b << 8
    for (let i = 0; i < 8; i++) crc = crc & 0x8000 ? ((crc << 1) ^ 0x1021) & 0xffff : (crc << 1) & 0xffff
  }
  return crc % 16_384
}

/** The port of the primary serving `slot`, as the live node `via` sees it (`CLUSTER NODES`). */
function primaryOf(via: number, slot: number): number | undefined {
  for (const line of cli(via, 'cluster', 'nodes').split('\n')) {
    // <id> <ip:port@bus> <flags> <primary> <ping> <pong> <epoch> <link> <slot or range>...
    const [, addr, flags, , , , , , ...slots] = line.split(' ')
    if (!addr || !flags || !/(^|,)master(,|$)/.test(flags) || /fail/.test(flags)) continue
    const serves = slots.some((r) => {
      const [lo, hi = lo] = r.split('-').map(Number) as [number, number?]
      return slot >= lo && slot <= (hi as number)
    })
    if (serves) return Number(/:(\d+)@/.exec(addr)?.[1])
  }
  return undefined
}

async function until(what: string, check: () => boolean, limitMs = 30_000) {
  const start = Date.now()
  while (!check()) {
    if (Date.now() - start > limitMs) throw new Error(`${what}: not within ${limitMs} ms`)
    await new Promise((r) => setTimeout(r, 100))
  }
}

const clusterOk = (port: number) => {
  try {
    return /cluster_state:ok/.test(cli(port, 'cluster', 'info'))
  } catch {
    return false
  }
}

let seeds = ''

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'hypersock-cluster-'))
  const ports: number[] = []
  for (let i = 0; i < 6; i++) ports.push(await clusterPort())
  for (const port of ports) {
    const p = await spawnRedis([
      '--port',
      String(port),
      '--dir',
      dir,
      '--cluster-enabled',
      'yes',
      '--cluster-config-file',
      `nodes-${port}.conf`,
      '--cluster-node-timeout',
      '1000',
    ])
    procs.push(p)
    servers.set(port, p)
  }
  execFileSync(
    'redis-cli',
    ['--cluster', 'create', ...ports.map((p) => `127.0.0.1:${p}`), '--cluster-replicas', '1', '--cluster-yes'],
    { timeout: 30_000 },
  )
  await until('cluster_state:ok on every node', () => ports.every(clusterOk))
  // A replica takes over only with data from its primary: wait until each one has synced.
  await until('every replica synced', () =>
    ports.every((p) => {
      const info = cli(p, 'info', 'replication')
      return /role:master/.test(info) || /master_link_status:up/.test(info)
    }),
  )
  seeds = ports.map((p) => `redis://127.0.0.1:${p}`).join(',')
}, 90_000)

afterAll(() => {
  for (const p of procs) p.kill()
  if (dir) rmSync(dir, { recursive: true, force: true })
})

const startNodes = (n: number, env: Record<string, string>) => startGroup(n, env, procs)

const text = (t: string) => t.slice(t.indexOf(' ') + 1)

/** Processes subscribed to sharded channel `channel`, as the primary serving its slot counts. */
function shardSubscribers(via: number, channel: string): number {
  const owner = primaryOf(via, slotOf(channel))
  if (owner === undefined) return -1
  const [, count] = cli(owner, 'pubsub', 'shardnumsub', channel).trim().split('\n')
  return Number(count)
}

describe('RedisAdapter on a Redis Cluster (3 primaries, 3 replicas)', () => {
  // Two channel prefixes whose slots one primary serves, so that one failover hits both.
  const pubsubChannel = 'cl-pubsub'
  let streamsChannel = ''
  let pubsub: Awaited<ReturnType<typeof startNodes>>
  let streams: Awaited<ReturnType<typeof startNodes>>

  beforeAll(async () => {
    const via = [...servers.keys()][0] as number
    const primary = primaryOf(via, slotOf(`{${pubsubChannel}}`))
    for (let k = 0; !streamsChannel; k++) {
      if (primaryOf(via, slotOf(`{cl-streams-${k}}`)) === primary) streamsChannel = `cl-streams-${k}`
    }
    pubsub = await startNodes(3, { REDIS_CLUSTER: seeds, HUB_CHANNEL: pubsubChannel })
    streams = await startNodes(3, { REDIS_CLUSTER: seeds, HUB_CHANNEL: streamsChannel, HUB_MODE: 'streams' })
  }, 60_000)

  /** The sharded channel of a room of the pub/sub hubs. */
  const roomChannel = (room: string) => `${pubsubChannel}#r#${room}`

  it('delivers every publish once, in order per publisher, in both modes, and counts rooms', async () => {
    const via = [...servers.keys()][0] as number
    for (const [g, stamped] of [
      [pubsub, false],
      [streams, true],
    ] as const) {
      const members = [await g.client(0, 'chat'), await g.client(1, 'chat'), await g.client(2, 'chat')]
      // Pub/sub mode: each process subscribes to the room's channel once it has a member there.
      if (!stamped) await until('chat subscribed', () => shardSubscribers(via, roomChannel('chat')) === 3)
      expect((await g.ask(1, { cmd: 'clusterRoomSize', room: 'chat' })).size).toBe(3)
      const COUNT = 100
      await Promise.all(
        [0, 1, 2].map((i) => g.ask(i, { cmd: 'publishMany', room: 'chat', prefix: `n${i}-`, count: COUNT })),
      )
      for (const m of members) {
        await m.until(() => m.got.length >= 3 * COUNT)
        const got = stamped ? m.got.map(text) : m.got
        expect(got).toHaveLength(3 * COUNT)
        for (let i = 0; i < 3; i++) {
          expect(got.filter((t) => t.startsWith(`n${i}-`))).toEqual(
            Array.from({ length: COUNT }, (_, k) => `n${i}-${k}`),
          )
        }
      }
      for (const m of members) m.ws.close()
    }
  })

  it('spreads rooms over the primaries: one sharded channel per room, held while it has members', async () => {
    const via = [...servers.keys()][0] as number
    const rooms = Array.from({ length: 12 }, (_, k) => `room-${k}`)
    const owners = new Set(rooms.map((r) => primaryOf(via, slotOf(roomChannel(r)))))
    expect(owners.size).toBeGreaterThan(1)
    const a = await pubsub.client(0, rooms.join(','))
    const b = await pubsub.client(1, rooms.join(','))
    // Each room's channel is subscribed, on the primary serving its slot, by the two processes
    // with members in it, and only by them.
    await until('every room subscribed by two processes', () =>
      rooms.every((r) => shardSubscribers(via, roomChannel(r)) === 2),
    )
    for (const r of rooms) await pubsub.ask(2, { cmd: 'publish', room: r, data: `${r}:x` })
    const expected = rooms.map((r) => `${r}:x`).sort()
    for (const m of [a, b]) {
      await m.until(() => m.got.length >= rooms.length)
      expect([...m.got].sort()).toEqual(expected)
    }
    // A room left and joined again at once on one process (its SUNSUBSCRIBE and SSUBSCRIBE
    // cross): it ends up subscribed, and delivers.
    const churn = 'churn-room'
    const c = await pubsub.client(2, churn)
    await until('churn subscribed', () => shardSubscribers(via, roomChannel(churn)) === 1)
    c.ws.close()
    const d = await pubsub.client(2, churn)
    await until('churn subscribed again', () => shardSubscribers(via, roomChannel(churn)) === 1)
    for (let k = 0; d.got.length === 0 && k < 100; k++) {
      await pubsub.ask(0, { cmd: 'publish', room: churn, data: `c${k}` })
      await new Promise((r) => setTimeout(r, 20))
    }
    await d.until(() => d.got.length > 0)
    d.ws.close()
    // A process whose last member of a room left unsubscribes from it.
    b.ws.close()
    await until('one process left per room', () => rooms.every((r) => shardSubscribers(via, roomChannel(r)) === 1))
    a.ws.close()
    await until('no process left', () => rooms.every((r) => shardSubscribers(via, roomChannel(r)) === 0))
  })

  it('follows a failover of the primary serving the hubs: streams mode loses nothing', async () => {
    const via = [...servers.keys()]
    const primary = primaryOf(via[0] as number, slotOf(`{${pubsubChannel}}`)) as number
    expect(primaryOf(via[0] as number, slotOf(`{${streamsChannel}}`))).toBe(primary)
    // A pub/sub room whose channel that primary serves too.
    let room = ''
    for (let k = 0; !room; k++) {
      if (primaryOf(via[0] as number, slotOf(roomChannel(`fo-${k}`))) === primary) room = `fo-${k}`
    }
    const s0 = await streams.client(0, 'fo')
    const s1 = await streams.client(1, 'fo')
    const p0 = await pubsub.client(0, room)
    const p1 = await pubsub.client(1, room)
    await until(`${room} subscribed`, () => shardSubscribers(via[0] as number, roomChannel(room)) === 2)
    const all = [...streams.nodes, ...pubsub.nodes]
    const marks = all.map((n) => n.lines.length)

    const COUNT = 300
    const done = [
      streams.ask(0, { cmd: 'publishPaced', room: 'fo', prefix: 'm', count: COUNT, everyMs: 10 }),
      pubsub.ask(0, { cmd: 'publishPaced', room, prefix: 'm', count: COUNT, everyMs: 10 }),
    ]
    await p0.until(() => p0.got.length >= 50)
    servers.get(primary)?.kill()
    const live = via.filter((p) => p !== primary)
    await until('a replica promoted', () => {
      const now = primaryOf(live[0] as number, slotOf(`{${pubsubChannel}}`))
      return now !== undefined && now !== primary
    })
    await Promise.all(all.map((n, i) => n.wait((l) => l.event === 'reconnect', marks[i])))
    await Promise.all(done)

    const expected = Array.from({ length: COUNT }, (_, k) => `m${k}`)
    for (const m of [s0, s1]) {
      await m.until(() => m.got.length >= COUNT)
      expect(m.got.map(text)).toEqual(expected)
    }
    await streams.ask(0, { cmd: 'publish', room: 'fo', data: 'end' })
    for (const m of [s0, s1]) await m.until(() => m.got.length === COUNT + 1)
    await pubsub.ask(0, { cmd: 'publish', room, data: 'end' })
    await p1.until(() => p1.got.includes('end'))
    expect(p0.got).toEqual([...expected, 'end'])
    const remote = p1.got.filter((t) => t !== 'end')
    expect(remote).toEqual(expected.filter((t) => remote.includes(t)))
    console.log(
      `Redis Cluster failover, ${COUNT} messages at 100/s: streams mode lost 0; ` +
        `pub/sub mode lost ${COUNT - remote.length} on the other process`,
    )
    for (const m of [s0, s1, p0, p1]) m.ws.close()
  }, 90_000)

  it('refuses cluster options it cannot honour', () => {
    const cluster = ['redis://127.0.0.1:7000']
    expect(() => new RedisAdapter({ cluster: [] })).toThrow(/non-empty/)
    expect(() => new RedisAdapter({ cluster, url: 'redis://127.0.0.1:6379' })).toThrow(/not both/)
    expect(() => new RedisAdapter({ cluster: ['redis://127.0.0.1:7000', 'rediss://127.0.0.1:7001'] })).toThrow(/mix/)
    expect(() => new RedisAdapter({ cluster: ['http://127.0.0.1:7000'] })).toThrow(/rediss?:\/\//)
    expect(() => new RedisAdapter({ cluster, tls: {} })).toThrow(/rediss:\/\//)
    expect(() => new RedisAdapter({ cluster, channel: 'a{b}' })).toThrow(/\{ or \}/)
    expect(() => new RedisAdapter({ cluster, mode: 'streams' })).not.toThrow()
    expect(() => new RedisAdapter({ cluster: ['rediss://127.0.0.1:7000'], tls: {} })).not.toThrow()
  })
})

describe('RedisAdapter on a Redis Cluster over TLS (rediss://, 3 primaries)', () => {
  const track = trackServers()
  const ca = generateCertificate({ isCa: true, commonName: 'hypersock redis cluster test CA' })
  // For localhost, 127.0.0.1 and ::1: the nodes are reached at the IP addresses CLUSTER SLOTS gives.
  const serverCert = generateCertificate({ ca })
  const otherCa = generateCertificate({ isCa: true, commonName: 'some other CA' })
  const ports: number[] = []
  let tlsDir = ''
  let caFile = ''

  beforeAll(async () => {
    tlsDir = mkdtempSync(join(tmpdir(), 'hypersock-tls-cluster-'))
    const file = (name: string, text: string) => {
      writeFileSync(join(tlsDir, name), text)
      return join(tlsDir, name)
    }
    const cert = file('server.crt', serverCert.cert)
    const key = file('server.key', serverCert.key)
    caFile = file('ca.crt', ca.cert)
    for (let i = 0; i < 3; i++) ports.push(await clusterPort())
    for (const port of ports) {
      procs.push(
        await spawnRedis([
          '--port',
          '0',
          '--tls-port',
          String(port),
          '--tls-cluster',
          'yes',
          '--tls-cert-file',
          cert,
          '--tls-key-file',
          key,
          '--tls-ca-cert-file',
          caFile,
          '--tls-auth-clients',
          'no',
          '--dir',
          tlsDir,
          '--cluster-enabled',
          'yes',
          '--cluster-config-file',
          `tls-nodes-${port}.conf`,
          '--cluster-node-timeout',
          '1000',
        ]),
      )
    }
    execFileSync(
      'redis-cli',
      [
        '--tls',
        '--cacert',
        caFile,
        '--cluster',
        'create',
        ...ports.map((p) => `127.0.0.1:${p}`),
        '--cluster-replicas',
        '0',
        '--cluster-yes',
      ],
      { timeout: 30_000 },
    )
    await until('cluster_state:ok on every node', () =>
      ports.every((p) => /cluster_state:ok/.test(tlsCli(p, 'cluster', 'info'))),
    )
  }, 60_000)

  afterAll(() => {
    if (tlsDir) rmSync(tlsDir, { recursive: true, force: true })
  })

  const tlsCli = (port: number, ...args: string[]) => {
    try {
      return execFileSync('redis-cli', ['--tls', '--cacert', caFile, '-p', String(port), ...args], {
        timeout: 10_000,
      }).toString()
    } catch {
      return ''
    }
  }
  /** Processes subscribed to `channel`: only the primary serving its slot counts any. */
  const subscribers = (channel: string) =>
    ports.reduce((n, p) => n + Number(tlsCli(p, 'pubsub', 'shardnumsub', channel).trim().split('\n')[1] ?? 0), 0)

  async function tlsHub(tls: { ca: string }) {
    const adapter = new RedisAdapter({
      cluster: ports.map((p) => `rediss://127.0.0.1:${p}`),
      tls,
      channel: 'tls-cl',
    })
    const errors: HypersockError[] = []
    adapter.on('error', (e: HypersockError) => errors.push(e))
    const hub = new Hub({ adapter })
    const server = track(await serveWebSocket({ hub, open: (ws) => joinRoomsFromQuery(hub, ws) }))
    return { hub, adapter, port: server.port, errors }
  }

  it('relays rooms spread over the shards, each node verified against its address', async () => {
    const a = await tlsHub({ ca: ca.cert })
    const b = await tlsHub({ ca: ca.cert })
    await Promise.all([a.adapter.ready(), b.adapter.ready()])
    const rooms = Array.from({ length: 6 }, (_, k) => `secure-${k}`)
    const onA = await member(a.port, rooms.join(','))
    const onB = await member(b.port, rooms.join(','))
    await until('every room subscribed by both hubs', () => rooms.every((r) => subscribers(`tls-cl#r#${r}`) === 2))
    for (const r of rooms) {
      a.hub.publish(r, `${r} from a`)
      b.hub.publish(r, `${r} from b`)
    }
    const expected = rooms.flatMap((r) => [`${r} from a`, `${r} from b`]).sort()
    for (const m of [onA, onB]) {
      await m.until(() => m.got.length >= expected.length)
      expect([...m.got].sort()).toEqual(expected)
    }
    expect([...a.errors, ...b.errors]).toEqual([])
    expect(await a.hub.clusterRoomSize('secure-0')).toBe(2)
    onA.ws.close()
    onB.ws.close()
  })

  it('reports a node whose certificate does not verify, and relays nothing through it', async () => {
    const bad = await tlsHub({ ca: otherCa.cert })
    while (bad.errors.length === 0) await new Promise((r) => setTimeout(r, 20))
    expect(bad.errors[0]?.code).toMatch(/^ERR_TLS/)
    expect(bad.adapter.connected).toBe(false)
  })
})

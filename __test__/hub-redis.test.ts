// The Redis adapter across processes: a real redis-server on loopback, three hypersock processes
// (child processes running fixtures/hub-node.mjs) and `ws` clients on each. Checks delivery to
// every member exactly once, order per publisher, cross-node room sizes and member lists (with
// metadata, and a timeout when a subscriber of the control channel never answers), and that local delivery
// goes on through a Redis outage and relaying resumes once Redis is back. Then `rediss://`: two
// hubs in this process relay through a redis-server on a TLS port (with and without client
// certificates, made at test time), and a wrong CA or a missing client certificate is reported
// as a TLS error without delivery.
import { spawn } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import {
  type ClientTlsOptions,
  type ClusterMember,
  Hub,
  type HypersockError,
  RedisAdapter,
  serveWebSocket,
  TlsError,
} from 'hypersock'
import { generateCertificate } from 'hypersock/testing'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { caught, freePort, joinRoomsFromQuery, trackServers } from './helpers.js'
import { type Line, member, type Proc, spawnNode, spawnRedis } from './redis-procs.js'

let redisPort = 0
let redis: Proc | undefined
const nodes: Proc[] = []
const ports: number[] = []

function startRedis(): Promise<Proc> {
  return spawnRedis(['--port', String(redisPort)])
}

beforeAll(async () => {
  redisPort = await freePort()
  redis = await startRedis()
  for (let i = 0; i < 3; i++) {
    const { node, port } = await spawnNode({
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      HUB_CHANNEL: `test-${redisPort}`,
    })
    nodes.push(node)
    ports.push(port)
  }
}, 60_000)

afterAll(() => {
  for (const n of nodes) n.kill()
  redis?.kill()
})

/**
 * A member of node `i` in `rooms` (which may go on with `&name=...`), returned once the node's
 * open handler has joined it, with its id on that node.
 */
async function client(i: number, rooms: string) {
  const node = nodes[i] as Proc
  const opens = node.lines.length
  const m = await member(ports[i] as number, rooms)
  const opened = await node.wait((l) => l.event === 'open', opens)
  return { ...m, id: opened.wsId as number }
}

let nextId = 1
async function ask(i: number, cmd: Record<string, unknown>): Promise<Line> {
  const id = nextId++
  const node = nodes[i] as Proc
  node.send({ ...cmd, id })
  return node.wait((l) => l.id === id)
}

describe('RedisAdapter across three processes', () => {
  it('delivers a publish to the members on every process exactly once, in order per publisher', async () => {
    const members = [await client(0, 'chat'), await client(1, 'chat'), await client(2, 'chat,other')]
    const outsider = await client(1, 'other')
    const size = await ask(0, { cmd: 'clusterRoomSize', room: 'chat' })
    expect(size.size).toBe(3)
    expect((await ask(2, { cmd: 'clusterRoomSize', room: 'other' })).size).toBe(2)
    expect((await ask(1, { cmd: 'clusterRoomSize', room: 'nobody' })).size).toBe(0)

    const COUNT = 200
    await Promise.all(
      [0, 1, 2].map((i) => ask(i, { cmd: 'publishMany', room: 'chat', prefix: `n${i}-`, count: COUNT })),
    )
    for (const m of members) {
      await m.until(() => m.got.length >= 3 * COUNT)
      for (let i = 0; i < 3; i++) {
        const fromNode = m.got.filter((t) => t.startsWith(`n${i}-`))
        expect(fromNode).toEqual(Array.from({ length: COUNT }, (_, k) => `n${i}-${k}`))
      }
    }
    // A marker published after everything else proves nothing more (no echo, no duplicate) came.
    await ask(0, { cmd: 'publish', room: 'chat', data: 'end' })
    await ask(0, { cmd: 'publish', room: 'other', data: 'other-end' })
    for (const m of members) {
      await m.until(() => m.got.includes('end'))
      // (The third member is also in `other`, whose marker may or may not have come yet.)
      expect(m.got.filter((t) => t !== 'other-end').length).toBe(3 * COUNT + 1)
    }
    await outsider.until(() => outsider.got.includes('other-end'))
    expect(outsider.got).toEqual(['other-end'])
    for (const m of [...members, outsider]) m.ws.close()
  })

  it('lists the members of a room on every process with their metadata', async () => {
    const ann = await client(0, 'team&name=ann')
    const bob = await client(1, 'team&name=bob')
    const cy = await client(2, 'team&name=cy')
    const dan = await client(2, 'elsewhere&name=dan')
    const anon = await client(2, 'team')
    const answer = await ask(1, { cmd: 'clusterMembers', room: 'team' })
    const members = answer.members as ClusterMember[]
    const byName = (name: string | undefined) => members.find((m) => m.meta.name === name) as ClusterMember
    expect(members.map((m) => m.meta.name ?? '-').sort()).toEqual(['-', 'ann', 'bob', 'cy'])
    // The asking process lists its own members first and marks them local.
    expect(members[0]).toEqual({ process: byName('bob').process, id: bob.id, meta: { name: 'bob' }, local: true })
    expect(members.filter((m) => m.local)).toHaveLength(1)
    expect(byName('ann')).toMatchObject({ id: ann.id, local: false })
    expect(byName('cy')).toMatchObject({ id: cy.id, local: false })
    expect(byName(undefined)).toMatchObject({ id: anon.id, meta: {}, local: false })
    // One id per process, the same for all of its members.
    expect(new Set(members.map((m) => m.process)).size).toBe(3)
    expect(byName(undefined).process).toBe(byName('cy').process)
    expect(byName('ann').process).toMatch(/^[0-9a-f]{32}$/)
    expect((await ask(0, { cmd: 'clusterMembers', room: 'elsewhere' })).members).toEqual([
      { process: byName('cy').process, id: dan.id, meta: { name: 'dan' }, local: false },
    ])
    expect((await ask(0, { cmd: 'clusterMembers', room: 'nobody' })).members).toEqual([])
    for (const m of [ann, bob, cy, dan, anon]) m.ws.close()
  })

  it('keeps delivering locally while Redis is down, reports it, and resumes after a restart', async () => {
    const a0 = await client(0, 'ops')
    const b0 = await client(0, 'ops')
    const a1 = await client(1, 'ops')
    const a2 = await client(2, 'ops')
    const marks = nodes.map((n) => n.lines.length)

    redis?.kill()
    // Wait until every process saw its subscription drop.
    await Promise.all(
      nodes.map((n, i) => n.wait((l) => l.event === 'error' && String(l.message).includes('subscribing'), marks[i])),
    )

    // Local members still get what their own process publishes.
    const r = await ask(0, { cmd: 'publish', room: 'ops', data: 'during' })
    expect(r.sent).toBe(2)
    await a0.until(() => a0.got.includes('during'))
    await b0.until(() => b0.got.includes('during'))
    expect((await ask(1, { cmd: 'clusterRoomSize', room: 'ops' })).code).toBe('ERR_HUB_ADAPTER')

    redis = await startRedis()
    await Promise.all(nodes.map((n, i) => n.wait((l) => l.event === 'reconnect', marks[i])))

    await ask(1, { cmd: 'publish', room: 'ops', data: 'after' })
    for (const m of [a0, b0, a1, a2]) await m.until(() => m.got.includes('after'))
    // 'during' may or may not reach the other processes (it waited in the queue), but never twice.
    for (const m of [a0, b0, a1, a2]) {
      expect(m.got.filter((t) => t === 'after')).toHaveLength(1)
      expect(m.got.filter((t) => t === 'during').length).toBeLessThanOrEqual(1)
    }
    expect((await ask(2, { cmd: 'clusterRoomSize', room: 'ops' })).size).toBe(4)
    for (const m of [a0, b0, a1, a2]) m.ws.close()
  })
})

describe('RedisAdapter cluster questions', () => {
  const track = trackServers()

  it('rejects with ETIMEDOUT when a subscriber of the control channel never answers', async () => {
    const channel = `silent-${process.pid}`
    // A plain Redis client subscribed to the control channel: PUBLISH counts it as a listener,
    // and it never answers.
    const silent = spawn('redis-cli', ['-p', String(redisPort), 'subscribe', `${channel}#ctl`], {
      stdio: ['ignore', 'pipe', 'inherit'],
    })
    try {
      const subscribed = new Promise<void>((resolve, reject) => {
        let out = ''
        silent.stdout?.on('data', (d: Buffer) => {
          out += d.toString()
          if (/^1$/m.test(out)) resolve()
        })
        silent.on('exit', () => reject(new Error('redis-cli exited')))
      })
      await subscribed
      const adapter = new RedisAdapter({ url: `redis://127.0.0.1:${redisPort}`, channel, requestTimeout: 300 })
      const hub = new Hub({ adapter })
      track(await serveWebSocket({ hub, open: (ws) => joinRoomsFromQuery(hub, ws) }))
      await adapter.ready()
      const members = await caught(() => hub.clusterMembers('room'))
      expect(members.code).toBe('ETIMEDOUT')
      expect(members.message).toMatch(/cluster members \(a process did not answer\) timed out/)
      const size = await caught(() => hub.clusterRoomSize('room'))
      expect(size.code).toBe('ETIMEDOUT')
    } finally {
      silent.kill()
    }
  })
})

describe('RedisAdapter over TLS (rediss://)', () => {
  const track = trackServers()
  const ca = generateCertificate({ isCa: true, commonName: 'hypersock redis test CA' })
  // For localhost, 127.0.0.1 and ::1.
  const serverCert = generateCertificate({ ca })
  const clientCert = generateCertificate({ ca, commonName: 'hub-node' })
  const otherCa = generateCertificate({ isCa: true, commonName: 'some other CA' })
  let dir = ''
  const servers: Proc[] = []
  /** TLS port of a redis-server that requires client certificates (Redis's default). */
  let mtlsPort = 0
  /** TLS port of a redis-server started with `--tls-auth-clients no`. */
  let tlsPort = 0

  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'hypersock-rediss-'))
    const file = (name: string, text: string) => {
      writeFileSync(join(dir, name), text)
      return join(dir, name)
    }
    const tlsArgs = [
      '--port',
      '0',
      '--tls-cert-file',
      file('server.crt', serverCert.cert),
      '--tls-key-file',
      file('server.key', serverCert.key),
      '--tls-ca-cert-file',
      file('ca.crt', ca.cert),
    ]
    mtlsPort = await freePort()
    servers.push(await spawnRedis([...tlsArgs, '--tls-port', String(mtlsPort)]))
    tlsPort = await freePort()
    servers.push(await spawnRedis([...tlsArgs, '--tls-port', String(tlsPort), '--tls-auth-clients', 'no']))
  }, 30_000)

  afterAll(() => {
    for (const s of servers) s.kill()
    if (dir) rmSync(dir, { recursive: true, force: true })
  })

  let channels = 0

  /**
   * A hub on a WebSocket server of this process, relaying through `url`; its `open` joins the
   * rooms in `?rooms=a,b`. Records the adapter's error events.
   */
  async function tlsHub(url: string, tls: ClientTlsOptions, channel: string) {
    const adapter = new RedisAdapter({ url, tls, channel })
    const errors: HypersockError[] = []
    const waiters: Array<() => void> = []
    adapter.on('error', (e: HypersockError) => {
      errors.push(e)
      for (const w of waiters.splice(0)) w()
    })
    const hub = new Hub({ adapter })
    const server = track(
      await serveWebSocket({
        hub,
        open(ws) {
          joinRoomsFromQuery(hub, ws)
        },
      }),
    )
    const firstError = async () => {
      while (errors.length === 0) await new Promise<void>((r) => waiters.push(r))
      return errors[0] as HypersockError
    }
    return { hub, adapter, port: server.port, errors, firstError }
  }

  /** Waits until each hub counts `n` members of `room` across processes. */
  async function roomSizeIs(hub: Hub, room: string, n: number) {
    while ((await hub.clusterRoomSize(room)) !== n) await new Promise((r) => setTimeout(r, 20))
  }

  /** Two hubs relaying through `url`, each with one member in `room`; checks both directions. */
  async function relayBothWays(url: string, tls: ClientTlsOptions) {
    const channel = `tls-${process.pid}-${channels++}`
    const a = await tlsHub(url, tls, channel)
    const b = await tlsHub(url, tls, channel)
    await Promise.all([a.adapter.ready(), b.adapter.ready()])
    expect(a.adapter.connected).toBe(true)
    const onA = await member(a.port, 'secure')
    const onB = await member(b.port, 'secure')
    await roomSizeIs(a.hub, 'secure', 2)
    a.hub.publish('secure', 'from a')
    b.hub.publish('secure', 'from b')
    for (const m of [onA, onB]) {
      await m.until(() => m.got.length >= 2)
      expect(m.got.sort()).toEqual(['from a', 'from b'])
    }
    expect([...a.errors, ...b.errors]).toEqual([])
    onA.ws.close()
    onB.ws.close()
  }

  it('relays between two hubs with the CA and a client certificate (mutual TLS)', async () => {
    await relayBothWays(`rediss://127.0.0.1:${mtlsPort}`, { ca: ca.cert, cert: clientCert.cert, key: clientCert.key })
  })

  it('relays between two hubs with only the CA when the server asks for no client certificate', async () => {
    // By host name: the certificate is checked against `localhost`.
    await relayBothWays(`rediss://localhost:${tlsPort}`, { ca: ca.cert })
  })

  it('reports a wrong CA as a TLS error, delivers nothing through it, and keeps the process up', async () => {
    const channel = `tls-${process.pid}-${channels++}`
    const url = `rediss://127.0.0.1:${tlsPort}`
    const good = await tlsHub(url, { ca: ca.cert }, channel)
    const other = await tlsHub(url, { ca: ca.cert }, channel)
    const bad = await tlsHub(url, { ca: otherCa.cert }, channel)
    await Promise.all([good.adapter.ready(), other.adapter.ready()])
    const err = await bad.firstError()
    expect(err).toBeInstanceOf(TlsError)
    expect(err.code).toBe('ERR_TLS_CERT_UNKNOWN_CA')
    expect(err.message).toMatch(/TLS/)
    expect(err.message).toMatch(/certificate/)
    expect(bad.adapter.connected).toBe(false)

    const onGood = await member(good.port, 'room')
    await member(bad.port, 'room')
    await roomSizeIs(other.hub, 'room', 1)
    // The bad hub's server joins its member in its open handler, after the client saw the 101.
    while (bad.hub.roomSize('room') !== 1) await new Promise((r) => setTimeout(r, 10))
    expect(bad.hub.publish('room', 'through a bad CA').sent).toBe(1)
    other.hub.publish('room', 'marker')
    await onGood.until(() => onGood.got.includes('marker'))
    // Give the failing adapter time for a few more attempts (backoff starts at 50 ms).
    await new Promise((r) => setTimeout(r, 300))
    expect(onGood.got).toEqual(['marker'])
    expect(bad.adapter.connected).toBe(false)
    // The hubs that trust the right CA are still relaying.
    other.hub.publish('room', 'still up')
    await onGood.until(() => onGood.got.includes('still up'))
    onGood.ws.close()
  })

  it('reports a missing client certificate as a TLS error when the server requires one', async () => {
    const hub = await tlsHub(`rediss://127.0.0.1:${mtlsPort}`, { ca: ca.cert }, `tls-${process.pid}-${channels++}`)
    const err = await hub.firstError()
    expect(err.code).toBe('ERR_TLS_HANDSHAKE')
    expect(err.message).toMatch(/TLS/)
    expect(err.message).toMatch(/client certificate/)
    expect(hub.adapter.connected).toBe(false)
  })

  it('takes tls only with rediss://', () => {
    expect(() => new RedisAdapter({ url: 'redis://127.0.0.1:6379', tls: { ca: ca.cert } })).toThrow(
      expect.objectContaining({ code: 'ERR_INVALID_ARG_VALUE' }),
    )
    expect(() => new RedisAdapter({ url: 'rediss://127.0.0.1:6379', tls: { ca: ca.cert } })).not.toThrow()
  })
})

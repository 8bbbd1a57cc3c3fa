// The Redis adapter in streams mode, against real redis-server processes and hypersock child
// processes (fixtures/hub-node.mjs with HUB_MODE=streams, ids stamped on messages):
// - three processes deliver every message to every member once, in one order everywhere;
// - a client that reconnects to another process with the id of the last message it saw gets
//   what it missed, then the live messages, each once; an id older than the history is refused;
// - across `kill -9` of a redis-server with an append-only file and its restart, streams mode
//   loses nothing and repeats nothing, beside pub/sub mode in the same run (whose loss is
//   reported, not asserted: it is a race);
// - a message Redis stored but whose reply was lost is sent again and still delivered once; a
//   process away for longer than the history reports the gap (through a TCP relay that drops
//   a reply or cuts one process off);
// - bad input to `join(..., { since })` and to the adapter's options.
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Hub, type HypersockError, RedisAdapter, serveWebSocket } from 'hypersock'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { caught, freePort, joinRoomsFromQuery, trackServers } from './helpers.js'
import { member, type Proc, redisRelay, spawnRedis, startGroup } from './redis-procs.js'

const procs: Proc[] = []
const dirs: string[] = []

/** One redis-server for every test here but the restart (each uses its own channel). */
let redisPort = 0

beforeAll(async () => {
  redisPort = await freePort()
  procs.push(await spawnRedis(['--port', String(redisPort)]))
}, 30_000)

afterAll(() => {
  for (const p of procs) p.kill()
  for (const d of dirs) rmSync(d, { recursive: true, force: true })
})

/** A message as stamped: its stream id and its text. */
function unstamp(m: string): { id: string; text: string } {
  const sp = m.indexOf(' ')
  return { id: m.slice(0, sp), text: m.slice(sp + 1) }
}

/** Compares two stream ids. */
function idLess(a: string, b: string): boolean {
  const [am, as] = a.split('-').map(BigInt) as [bigint, bigint]
  const [bm, bs] = b.split('-').map(BigInt) as [bigint, bigint]
  return am < bm || (am === bm && as < bs)
}

const startNodes = (n: number, env: Record<string, string>) => startGroup(n, env, procs)

describe('RedisAdapter in streams mode across three processes', () => {
  let g: Awaited<ReturnType<typeof startNodes>>

  beforeAll(async () => {
    g = await startNodes(3, {
      REDIS_URL: `redis://127.0.0.1:${redisPort}`,
      HUB_CHANNEL: `streams-${redisPort}`,
      HUB_MODE: 'streams',
    })
  }, 60_000)

  it('delivers every message to every member once, in the same order on every process', async () => {
    const members = [await g.client(0, 'chat'), await g.client(1, 'chat'), await g.client(2, 'chat')]
    const COUNT = 200
    const published = await Promise.all(
      [0, 1, 2].map((i) => g.ask(i, { cmd: 'publishMany', room: 'chat', prefix: `n${i}-`, count: COUNT })),
    )
    expect(published).toHaveLength(3)
    for (const m of members) await m.until(() => m.got.length >= 3 * COUNT)
    const first = (members[0] as (typeof members)[0]).got
    for (const m of members) {
      // One order everywhere: the stream's.
      expect(m.got).toEqual(first)
      const parsed = m.got.map(unstamp)
      for (let k = 1; k < parsed.length; k++) {
        expect(idLess((parsed[k - 1] as { id: string }).id, (parsed[k] as { id: string }).id)).toBe(true)
      }
      for (let i = 0; i < 3; i++) {
        const fromNode = parsed.map((p) => p.text).filter((t) => t.startsWith(`n${i}-`))
        expect(fromNode).toEqual(Array.from({ length: COUNT }, (_, k) => `n${i}-${k}`))
      }
    }
    // A publish is delivered once Redis stored it, the publisher's own members included.
    const r = await g.ask(0, { cmd: 'publish', room: 'chat', data: 'end' })
    expect(r).toMatchObject({ sent: 0, skipped: 0, dropped: 0 })
    for (const m of members) {
      await m.until(() => m.got.some((t) => unstamp(t).text === 'end'))
      expect(m.got).toHaveLength(3 * COUNT + 1)
    }
    for (const m of members) m.ws.close()
  })

  it('catches a client that reconnects to another process up: what it missed, then live, each once', async () => {
    const watcher = await g.client(2, 'news')
    const first = await g.client(0, 'news')
    await g.ask(1, { cmd: 'publishMany', room: 'news', prefix: 'a', count: 5 })
    await first.until(() => first.got.length === 5)
    const lastId = unstamp(first.got[4] as string).id
    first.ws.close()
    await g.ask(1, { cmd: 'publishMany', room: 'news', prefix: 'b', count: 5 })
    await g.ask(1, { cmd: 'publish', room: 'elsewhere', data: 'not for news' })
    await watcher.until(() => watcher.got.length === 10)

    const back = await g.client(2, `news&since=${lastId}`)
    expect(back.opened.joins).toEqual([{ joined: true, recovered: true, replayed: 5 }])
    await back.until(() => back.got.length >= 5)
    await g.ask(0, { cmd: 'publish', room: 'news', data: 'live' })
    await back.until(() => back.got.some((t) => t.endsWith(' live')))
    await watcher.until(() => watcher.got.length === 11)
    // Exactly the five it missed, with the ids the others saw, then the live one.
    expect(back.got).toEqual(watcher.got.slice(5))
    expect(back.got.map((t) => unstamp(t).text)).toEqual(['b0', 'b1', 'b2', 'b3', 'b4', 'live'])

    // The id of the room's newest message: nothing to replay, live ones follow.
    const newest = unstamp(watcher.got[10] as string).id
    const current = await g.client(1, `news&since=${newest}`)
    expect(current.opened.joins).toEqual([{ joined: true, recovered: true, replayed: 0 }])
    await g.ask(1, { cmd: 'publish', room: 'news', data: 'next' })
    await current.until(() => current.got.length === 1)
    expect(unstamp(current.got[0] as string).text).toBe('next')
    for (const m of [watcher, back, current]) m.ws.close()
  })

  it('says when the history no longer reaches back to the id, and replays nothing', async () => {
    const early = await g.client(0, 'chat&since=1-0')
    expect(early.opened.joins).toEqual([{ joined: true, recovered: false, replayed: 0 }])
    await g.ask(1, { cmd: 'publish', room: 'chat', data: 'after' })
    await early.until(() => early.got.length === 1)
    expect(unstamp(early.got[0] as string).text).toBe('after')
    // An id past the stream's end (from a stream since deleted): not one of its ids, so nothing
    // is recovered, and the client joins at once rather than waiting for that id.
    const future = await g.client(1, 'chat&since=99999999999999-0')
    expect(future.opened.joins).toEqual([{ joined: true, recovered: false, replayed: 0 }])
    await g.ask(2, { cmd: 'publish', room: 'chat', data: 'later' })
    await future.until(() => future.got.length === 1)
    expect(unstamp(future.got[0] as string).text).toBe('later')
    for (const m of [early, future]) m.ws.close()
  })
})

describe('RedisAdapter across a Redis restart: streams mode beside pub/sub mode', () => {
  it('streams mode loses and repeats nothing across kill -9 and restart; pub/sub is reported', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hypersock-redis-aof-'))
    dirs.push(dir)
    const port = await freePort()
    // An append-only file synced on every write: what Redis acknowledged survives kill -9.
    const args = ['--port', String(port), '--dir', dir, '--appendonly', 'yes', '--appendfsync', 'always']
    let redis = await spawnRedis(args, true)
    procs.push(redis)
    const url = `redis://127.0.0.1:${port}`
    const streams = await startNodes(2, { REDIS_URL: url, HUB_CHANNEL: 'outage-s', HUB_MODE: 'streams' })
    const pubsub = await startNodes(2, { REDIS_URL: url, HUB_CHANNEL: 'outage-p' })
    const s0 = await streams.client(0, 'r')
    const s1 = await streams.client(1, 'r')
    const p0 = await pubsub.client(0, 'r')
    const p1 = await pubsub.client(1, 'r')
    const all = [...streams.nodes, ...pubsub.nodes]
    const marks = all.map((n) => n.lines.length)

    const COUNT = 300
    const done = [
      streams.ask(0, { cmd: 'publishPaced', room: 'r', prefix: 'm', count: COUNT, everyMs: 5 }),
      pubsub.ask(0, { cmd: 'publishPaced', room: 'r', prefix: 'm', count: COUNT, everyMs: 5 }),
    ]
    // Pub/sub delivers its own process's messages at once: they show how far publishing got.
    await p0.until(() => p0.got.length >= 50)
    redis.kill()
    await Promise.all(all.map((n, i) => n.wait((l) => l.event === 'error', marks[i])))
    await p0.until(() => p0.got.length >= 150)
    redis = await spawnRedis(args, true)
    procs.push(redis)
    await Promise.all(all.map((n, i) => n.wait((l) => l.event === 'reconnect', marks[i])))
    await Promise.all(done)

    const expected = Array.from({ length: COUNT }, (_, k) => `m${k}`)
    for (const m of [s0, s1]) {
      await m.until(() => m.got.length >= COUNT)
      expect(m.got.map((t) => unstamp(t).text)).toEqual(expected)
    }
    await pubsub.ask(0, { cmd: 'publish', room: 'r', data: 'end' })
    await p1.until(() => p1.got.includes('end'))
    await streams.ask(0, { cmd: 'publish', room: 'r', data: 'end' })
    for (const m of [s0, s1]) await m.until(() => m.got.length === COUNT + 1)
    // Pub/sub: the publisher's own member got everything; the other process got a subset, in
    // order, never twice.
    expect(p0.got).toEqual([...expected, 'end'])
    const remote = p1.got.filter((t) => t !== 'end')
    expect(remote).toEqual(expected.filter((t) => remote.includes(t)))
    console.log(
      `redis kill -9 and restart, ${COUNT} messages: streams mode lost 0 on both processes; ` +
        `pub/sub mode lost ${COUNT - remote.length} on the other process`,
    )
    for (const m of [s0, s1, p0, p1]) m.ws.close()
  }, 60_000)
})

describe('streams mode when a link to Redis fails', () => {
  const track = trackServers()
  /** A hub of this process in streams mode through Redis at `port`, its members joining `?rooms=`. */
  async function streamsHub(port: number, channel: string, extra: { historySize?: number } = {}) {
    const adapter = new RedisAdapter({ url: `redis://127.0.0.1:${port}`, channel, mode: 'streams', ...extra })
    const errors: HypersockError[] = []
    adapter.on('error', (e: HypersockError) => errors.push(e))
    const hub = new Hub({ adapter })
    const server = track(await serveWebSocket({ hub, open: (ws) => joinRoomsFromQuery(hub, ws) }))
    await adapter.ready()
    const joined = async (n: number) => {
      while (hub.roomSize('r') < n) await new Promise((r) => setTimeout(r, 5))
    }
    return { hub, port: server.port, errors, joined }
  }

  const redisCli = (...args: string[]) =>
    execFileSync('redis-cli', ['-p', String(redisPort), ...args])
      .toString()
      .trim()

  it('delivers once a message Redis stored but whose reply was lost with the connection', async () => {
    const relay = await redisRelay(redisPort)
    const channel = `resend-${redisPort}`
    const a = await streamsHub(relay.port, channel)
    const b = await streamsHub(redisPort, channel)
    const onA = await member(a.port, 'r')
    const onB = await member(b.port, 'r')
    await a.joined(1)
    await b.joined(1)
    a.hub.publish('r', 'first')
    for (const m of [onA, onB]) await m.until(() => m.got.length === 1)

    relay.dropReplyAfter('XADD')
    a.hub.publish('r', 'second')
    for (const m of [onA, onB]) await m.until(() => m.got.length === 2)
    expect(relay.dropped).toBe(1)
    a.hub.publish('r', 'third')
    for (const m of [onA, onB]) {
      await m.until(() => m.got.length === 3)
      expect(m.got).toEqual(['first', 'second', 'third'])
    }
    // Redis holds 'second' twice (stored, then sent again); readers skipped the copy by its number.
    expect(redisCli('XLEN', `${channel}#stream`)).toBe('4')
    expect(a.errors.map((e) => e.code)).toContain('ECONNRESET')
    for (const m of [onA, onB]) m.ws.close()
    relay.close()
  })

  it('reports a gap when a process was away for longer than the history, and goes on', async () => {
    const relay = await redisRelay(redisPort)
    const channel = `gap-${redisPort}`
    const key = `${channel}#stream`
    const a = await streamsHub(redisPort, channel, { historySize: 10 })
    const b = await streamsHub(relay.port, channel, { historySize: 10 })
    const onB = await member(b.port, 'r')
    await b.joined(1)
    a.hub.publish('r', 'before')
    await onB.until(() => onB.got.length === 1)

    relay.cut()
    while (b.errors.length === 0) await new Promise((r) => setTimeout(r, 5))
    const COUNT = 500
    for (let i = 0; i < COUNT; i++) a.hub.publish('r', `m${i}`)
    // Until Redis has taken all of them (XINFO's entries-added counts every XADD).
    const added = () => Number(/entries-added\n(\d+)/.exec(redisCli('XINFO', 'STREAM', key))?.[1])
    while (added() < COUNT + 1) await new Promise((r) => setTimeout(r, 10))
    relay.heal()
    await onB.until(() => onB.got.includes(`m${COUNT - 1}`))
    const gap = b.errors.find((e) => e.code === 'ERR_HUB_HISTORY_GAP')
    expect(gap?.message).toMatch(/historySize/)
    // What the trimmed history still held, in order, after the gap.
    const after = onB.got.slice(1)
    expect(after.length).toBeLessThan(COUNT)
    const first = Number((after[0] as string).slice(1))
    expect(after).toEqual(Array.from({ length: COUNT - first }, (_, k) => `m${first + k}`))
    onB.ws.close()
    relay.close()
  })
})

describe('join with since: bad input', () => {
  const track = trackServers()
  async function hubWith(options: ConstructorParameters<typeof RedisAdapter>[0] & object) {
    const adapter = new RedisAdapter({ url: `redis://127.0.0.1:${redisPort}`, channel: `bad-${redisPort}`, ...options })
    const hub = new Hub({ adapter })
    const server = track(await serveWebSocket({ hub }))
    await adapter.ready()
    return { hub, server }
  }

  it('refuses an id that is not one, and since without a streams adapter', async () => {
    const streams = await hubWith({ mode: 'streams' })
    for (const since of ['', 'abc', '12', '1-', '-1', '1-2-3', '1-x']) {
      const err = await caught(() => streams.hub.join(1, 'r', { since }))
      expect(err.code).toBe('ERR_INVALID_ARG_VALUE')
    }
    expect((await caught(() => streams.hub.join(1, 'r', { since: 5 as unknown as string }))).code).toBe(
      'ERR_INVALID_ARG_VALUE',
    )
    expect(
      (await caught(() => streams.hub.join(1, 'r', { sinse: '1-0' } as unknown as { since: string }))).message,
    ).toMatch(/since/)
    // Bad input rejects the promise; it does not throw.
    const rejected = streams.hub.join(1, 'r', { since: 5 as unknown as string })
    await expect(rejected).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' })
    await expect(streams.hub.join(1, '', { since: '1-0' })).rejects.toMatchObject({ code: 'ERR_INVALID_ARG_VALUE' })
    // A client that saw nothing yet gives no id: a plain join, with or without a streams adapter.
    for (const since of [undefined, null]) {
      expect(await streams.hub.join(12345, 'r', { since })).toEqual({ joined: false, recovered: false, replayed: 0 })
    }
    // A connection that is not open: nothing replayed, not joined.
    expect(await streams.hub.join(12345, 'r', { since: '1-0' })).toEqual({
      joined: false,
      recovered: false,
      replayed: 0,
    })
    const pubsub = await hubWith({})
    const err = await caught(() => pubsub.hub.join(1, 'r', { since: '1-0' }))
    expect(err.code).toBe('ERR_HUB_ADAPTER')
    expect(err.message).toMatch(/streams/)
  })

  it('takes history options only in streams mode', () => {
    const url = `redis://127.0.0.1:${redisPort}`
    for (const o of [{ historySize: 10 }, { historyTtl: 1000 }, { stampIds: true }]) {
      expect(() => new RedisAdapter({ url, ...o })).toThrow(/mode: 'streams'/)
    }
    expect(() => new RedisAdapter({ url, mode: 'stream' as 'streams' })).toThrow(/'pubsub' or 'streams'/)
    expect(() => new RedisAdapter({ url, mode: 'streams', historySize: 0 })).toThrow(/historySize/)
    expect(() => new RedisAdapter({ url, mode: 'streams', stampIds: 1 as unknown as boolean })).toThrow(/stampIds/)
    expect(
      () => new RedisAdapter({ url, mode: 'streams', historySize: 100, historyTtl: 60_000, stampIds: true }),
    ).not.toThrow()
  })
})

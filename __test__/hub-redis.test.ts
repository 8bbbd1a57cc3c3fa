// The Redis adapter across processes: a real redis-server on loopback, three hypersock processes
// (child processes running fixtures/hub-node.mjs) and `ws` clients on each. Checks delivery to
// every member exactly once, order per publisher, cross-node room sizes, and that local delivery
// goes on through a Redis outage and relaying resumes once Redis is back.
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import WS from 'ws'
import { freePort } from './helpers.js'

type Line = { event: string; [k: string]: unknown }

/** A child process that speaks JSON lines, with a way to wait for a matching line. */
class Proc {
  child: ChildProcess
  lines: Line[] = []
  #waiters: Array<() => void> = []

  constructor(child: ChildProcess, parse: (line: string) => Line | null) {
    this.child = child
    child.stderr?.on('data', (d: Buffer) => process.stderr.write(d))
    const rl = createInterface({ input: child.stdout as NodeJS.ReadableStream })
    rl.on('line', (text) => {
      const line = parse(text)
      if (!line) return
      this.lines.push(line)
      for (const w of this.#waiters.splice(0)) w()
    })
    child.on('exit', () => {
      this.lines.push({ event: 'exit' })
      for (const w of this.#waiters.splice(0)) w()
    })
  }

  /** Waits for the `n`th line (counting from `from`) that matches. */
  async wait(match: (l: Line) => boolean, from = 0, n = 1): Promise<Line> {
    for (;;) {
      const hits = this.lines.slice(from).filter(match)
      if (hits.length >= n) return hits[n - 1] as Line
      if (this.lines.some((l) => l.event === 'exit')) throw new Error('process exited')
      await new Promise<void>((r) => this.#waiters.push(r))
    }
  }

  send(o: unknown): void {
    this.child.stdin?.write(`${JSON.stringify(o)}\n`)
  }

  kill(): void {
    if (this.child.exitCode === null) this.child.kill('SIGKILL')
  }
}

let redisPort = 0
let redis: Proc | undefined
const nodes: Proc[] = []
const ports: number[] = []

async function startRedis(): Promise<Proc> {
  const child = spawn(
    'redis-server',
    ['--port', String(redisPort), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'],
    { stdio: ['ignore', 'pipe', 'pipe'] },
  )
  const proc = new Proc(child, (text) => (/Ready to accept connections/.test(text) ? { event: 'ready' } : null))
  await proc.wait((l) => l.event === 'ready')
  return proc
}

const fixture = fileURLToPath(new URL('./fixtures/hub-node.mjs', import.meta.url))

beforeAll(async () => {
  redisPort = await freePort()
  redis = await startRedis()
  for (let i = 0; i < 3; i++) {
    const child = spawn(process.execPath, [fixture], {
      env: { ...process.env, REDIS_URL: `redis://127.0.0.1:${redisPort}`, HUB_CHANNEL: `test-${redisPort}` },
      stdio: ['pipe', 'pipe', 'pipe'],
    })
    const node = new Proc(child, (text) => {
      try {
        return JSON.parse(text) as Line
      } catch {
        return null
      }
    })
    nodes.push(node)
    const listening = await node.wait((l) => l.event === 'listening')
    ports.push(listening.port as number)
    await node.wait((l) => l.event === 'ready')
  }
}, 60_000)

afterAll(() => {
  for (const n of nodes) n.kill()
  redis?.kill()
})

/** A `ws` client of node `i` in `rooms`, recording text messages. */
async function client(i: number, rooms: string) {
  const node = nodes[i] as Proc
  const opens = node.lines.length
  const ws = new WS(`ws://127.0.0.1:${ports[i]}/?rooms=${rooms}`)
  const got: string[] = []
  const waiters: Array<() => void> = []
  ws.on('message', (d: Buffer) => {
    got.push(d.toString())
    for (const w of waiters.splice(0)) w()
  })
  await once(ws, 'open')
  await node.wait((l) => l.event === 'open', opens)
  const until = async (pred: () => boolean) => {
    while (!pred()) await new Promise<void>((r) => waiters.push(r))
  }
  return { ws, got, until }
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

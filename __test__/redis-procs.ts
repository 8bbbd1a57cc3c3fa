// Child processes of the Redis tests: redis-server on loopback, and hypersock processes that
// speak JSON lines (fixtures/hub-node.mjs).
import { type ChildProcess, spawn } from 'node:child_process'
import { once } from 'node:events'
import net from 'node:net'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import WS from 'ws'

export type Line = { event: string; [k: string]: unknown }

/** A child process that speaks JSON lines, with a way to wait for a matching line. */
export class Proc {
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

/**
 * A redis-server on loopback with `args` (ports, TLS files), without persistence unless `persist`
 * (then `args` say how, e.g. `--appendonly yes --dir ...`).
 */
export async function spawnRedis(args: string[], persist = false): Promise<Proc> {
  const child = spawn(
    'redis-server',
    [...args, '--bind', '127.0.0.1', '--save', '', ...(persist ? [] : ['--appendonly', 'no'])],
    {
      stdio: ['ignore', 'pipe', 'pipe'],
    },
  )
  const proc = new Proc(child, (text) => (/Ready to accept connections/.test(text) ? { event: 'ready' } : null))
  await proc.wait((l) => l.event === 'ready')
  return proc
}

const fixture = fileURLToPath(new URL('./fixtures/hub-node.mjs', import.meta.url))

/**
 * A hypersock process of fixtures/hub-node.mjs with `env` (REDIS_URL, HUB_CHANNEL, HUB_MODE...),
 * returned once it listens and its adapter is ready.
 */
export async function spawnNode(env: Record<string, string>): Promise<{ node: Proc; port: number }> {
  const child = spawn(process.execPath, [fixture], {
    env: { ...process.env, ...env },
    stdio: ['pipe', 'pipe', 'pipe'],
  })
  const node = new Proc(child, (text) => {
    try {
      return JSON.parse(text) as Line
    } catch {
      return null
    }
  })
  const listening = await node.wait((l) => l.event === 'listening')
  await node.wait((l) => l.event === 'ready')
  return { node, port: listening.port as number }
}

/** A `ws` client of the server on `port` in `rooms`, recording text messages; open when it returns. */
export async function member(port: number, rooms: string) {
  const ws = new WS(`ws://127.0.0.1:${port}/?rooms=${rooms}`)
  const got: string[] = []
  const waiters: Array<() => void> = []
  ws.on('message', (d: Buffer) => {
    got.push(d.toString())
    for (const w of waiters.splice(0)) w()
  })
  await once(ws, 'open')
  const until = async (pred: () => boolean) => {
    while (!pred()) await new Promise<void>((r) => waiters.push(r))
  }
  return { ws, got, until }
}

/**
 * A TCP relay to a Redis on `port` that a test can break: `cut()` drops every connection and
 * refuses new ones until `heal()`; `dropReplyAfter(marker)` lets the next client write that
 * contains `marker` reach Redis, then drops that connection before Redis's reply comes back.
 */
export async function redisRelay(port: number) {
  const sockets = new Set<net.Socket>()
  let refusing = false
  let marker: string | undefined
  let dropped = 0
  const server = net.createServer((client) => {
    if (refusing) {
      client.destroy()
      return
    }
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
    client.on('data', (chunk: Buffer) => {
      upstream.write(chunk)
      if (marker !== undefined && chunk.includes(marker)) {
        marker = undefined
        dropped++
        // Redis gets the command; its reply finds the connection gone.
        upstream.end()
        client.destroy()
      }
    })
    upstream.on('data', (chunk: Buffer) => {
      if (!client.destroyed) client.write(chunk)
    })
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  return {
    port: (server.address() as net.AddressInfo).port,
    cut() {
      refusing = true
      for (const s of sockets) s.destroy()
    },
    heal() {
      refusing = false
    },
    dropReplyAfter(text: string) {
      marker = text
    },
    get dropped() {
      return dropped
    },
    close() {
      server.close()
      for (const s of sockets) s.destroy()
    },
  }
}

/**
 * `n` hypersock processes (fixtures/hub-node.mjs) with `env`, added to `procs` for cleanup, with
 * `ask(i, cmd)` (a command and its answer) and `client(i, query)` (a member of process `i` in the
 * rooms of `query`, which may go on with `&since=...`, once that process joined it, with its
 * `open` report).
 */
export async function startGroup(n: number, env: Record<string, string>, procs: Proc[]) {
  const nodes: Proc[] = []
  const ports: number[] = []
  for (let i = 0; i < n; i++) {
    const { node, port } = await spawnNode(env)
    procs.push(node)
    nodes.push(node)
    ports.push(port)
  }
  let nextId = 1
  const ask = async (i: number, cmd: Record<string, unknown>): Promise<Line> => {
    const id = nextId++
    const node = nodes[i] as Proc
    node.send({ ...cmd, id })
    return node.wait((l) => l.id === id)
  }
  const client = async (i: number, query: string) => {
    const node = nodes[i] as Proc
    const opens = node.lines.length
    const m = await member(ports[i] as number, query)
    const opened = await node.wait((l) => l.event === 'open', opens)
    return { ...m, opened }
  }
  return { nodes, ports, ask, client }
}

// Child processes of the benchmark: every one is tracked so that none outlives the harness.
import { spawn, spawnSync } from 'node:child_process'
import { readFileSync } from 'node:fs'
import net from 'node:net'
import { createInterface } from 'node:readline'

/** Every child still running. */
const children = new Set()

/** Kills every child still running, at once (safe to call from a process 'exit' handler). */
export function killAll() {
  for (const child of children) child.kill('SIGKILL')
  children.clear()
}

/** Spawns a tracked child. Its stdin is a pipe: the benchmark servers exit when it closes. */
export function track(command, args, options = {}) {
  const child = spawn(command, args, { stdio: ['pipe', 'pipe', 'pipe'], ...options })
  children.add(child)
  child.on('exit', () => children.delete(child))
  // Without a listener, a failed spawn (ENOENT) would crash the harness; callers see it via `exited`.
  child.on('error', () => {})
  child.stdin?.on('error', () => {})
  child.exited = new Promise((resolve) => {
    child.on('close', (code, signal) => resolve({ code, signal }))
    child.on('error', (error) => resolve({ code: null, signal: null, error }))
  })
  return child
}

/** Keeps the last `max` characters written to a stream, for error messages. */
function tail(stream, max = 4000) {
  const box = { text: '' }
  stream?.setEncoding('utf8')
  stream?.on('data', (chunk) => {
    box.text = (box.text + chunk).slice(-max)
  })
  return box
}

/** The end of a child's stderr, on its own lines, for an error message. */
function stderrNote(box) {
  const text = box.text.trim()
  return text ? `\n${text}` : ''
}

/**
 * Runs a command to completion within `timeoutMs` and returns its stdout.
 * Rejects with its stderr when it fails or overruns.
 */
export async function run(command, args, { timeoutMs, ...options } = {}) {
  const child = track(command, args, options)
  child.stdin.end()
  const out = tail(child.stdout, 1 << 20)
  const err = tail(child.stderr)
  const timer = setTimeout(() => child.kill('SIGKILL'), timeoutMs)
  const { code, signal, error } = await child.exited
  clearTimeout(timer)
  const name = [command, ...args].join(' ')
  if (error) throw new Error(`cannot run ${command}: ${error.message}`)
  if (signal === 'SIGKILL') throw new Error(`${name} did not finish within ${timeoutMs} ms${stderrNote(err)}`)
  if (code !== 0) throw new Error(`${name} failed (${signal ?? `exit ${code}`})${stderrNote(err)}`)
  return out.text
}

/** Runs a command with its output passed through to our stderr (for progress, e.g. cargo). */
export async function runVisible(command, args, options = {}) {
  const child = track(command, args, { ...options, stdio: ['ignore', 2, 2] })
  const { code, signal, error } = await child.exited
  if (error) throw new Error(`cannot run ${command}: ${error.message}`)
  if (code !== 0) throw new Error(`${[command, ...args].join(' ')} failed (${signal ?? `exit ${code}`})`)
}

/**
 * Makes sure every command of `tools` (`{ command: debianPackage }`) is on PATH, installing the
 * Debian packages of the missing ones with apt-get.
 */
export async function ensureTools(tools) {
  const has = (cmd) => spawnSync(cmd, ['--version'], { stdio: 'ignore' }).error === undefined
  const missing = [...new Set(Object.entries(tools).flatMap(([cmd, pkg]) => (has(cmd) ? [] : [pkg])))]
  if (missing.length === 0) return
  console.error(`bench: installing ${missing.join(', ')} with apt-get`)
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    await runVisible('apt-get', ['update'], { env })
    await runVisible('apt-get', ['install', '-y', ...missing], { env })
  } catch (error) {
    throw new Error(`\`apt-get install -y ${missing.join(' ')}\` failed: ${error.message}`)
  }
  const still = Object.keys(tools).filter((cmd) => !has(cmd))
  if (still.length > 0) throw new Error(`${still.join(', ')} still not on PATH after apt-get install`)
}

/**
 * Starts a server that prints `LISTENING <port>` on stdout once bound.
 * Resolves to `{ port, stop() }`; rejects if it exits or stays silent for `timeoutMs`.
 */
export async function startServer(name, command, args, { timeoutMs = 20_000, ...options } = {}) {
  const child = track(command, args, options)
  const err = tail(child.stderr)
  const lines = createInterface({ input: child.stdout })
  const listening = (async () => {
    for await (const line of lines) {
      const match = /^LISTENING (\d+)$/.exec(line.trim())
      if (match) return Number(match[1])
    }
    return undefined
  })()
  let timer
  const timeout = new Promise((resolve) => {
    timer = setTimeout(resolve, timeoutMs, 'timeout')
  })
  const port = await Promise.race([listening, child.exited, timeout])
  clearTimeout(timer)
  if (typeof port !== 'number') {
    child.kill('SIGKILL')
    let why = 'exited before listening'
    if (port === 'timeout') why = `did not start within ${timeoutMs} ms`
    else if (port?.error) why = `could not start: ${port.error.message}`
    throw new Error(`server ${name} ${why}${stderrNote(err)}`)
  }
  // Keep draining stdout so a chatty server never blocks on a full pipe.
  child.stdout.resume()
  return { port, pid: child.pid, stop: () => stop(child) }
}

/** Stops a server: closes its stdin, then SIGTERM, then SIGKILL if it lingers. */
async function stop(child) {
  if (child.exitCode !== null || child.signalCode !== null) return
  child.stdin.end()
  child.kill('SIGTERM')
  const timer = setTimeout(() => child.kill('SIGKILL'), 3000)
  await child.exited
  clearTimeout(timer)
}

/** Starts a server, runs `fn(port, pid)` against it, and always stops it. */
export async function withServer(name, command, args, fn) {
  const server = await startServer(name, command, args)
  try {
    return await fn(server.port, server.pid)
  } finally {
    await server.stop()
  }
}

/** Starts a throwaway redis-server on 127.0.0.1:`port` (no persistence), tracked like {@link track}. */
export function spawnRedis(port) {
  return track('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'])
}

/**
 * The resident memory of process `pid`, in bytes: `rss` is all of it (VmRSS), `anon` the anonymous
 * part (RssAnon: heaps, stacks, JIT code), without the pages of the binary and its libraries
 * mapped from disk. The per-connection rows divide the growth of `anon`: code pages are a one-time
 * cost whatever the number of connections, and they page in late. Node's optimizing compiler,
 * about 1.2 MiB of the node binary, first runs when the JS handlers get hot, which a warm-up of
 * 100 connections does not reach; over 1,000 sockets that alone read as 1.2 KiB per socket.
 */
export function memory(pid) {
  const status = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (field) => Number(new RegExp(`${field}:\\s+(\\d+) kB`).exec(status)?.[1])
  const rss = kb('VmRSS')
  const anon = kb('RssAnon')
  if (!rss || !anon) throw new Error(`cannot read the resident memory of process ${pid}`)
  return { rss: rss * 1024, anon: anon * 1024 }
}

/** The growth from `before` to `after` (both from {@link memory}), for a row's detail. */
export function growth(before, after) {
  return `anonymous RSS ${mb(before.anon)} -> ${mb(after.anon)} MiB (all RSS ${mb(before.rss)} -> ${mb(after.rss)})`
}

/** Bytes as MiB with one decimal, for details. */
export function mb(bytes) {
  return (bytes / 1024 / 1024).toFixed(1)
}

/** Connections opened and closed before an idle run's baseline (see `idleRssPerConnection`). */
const WARM_CONNECTIONS = 100

/** Starts `command args` and resolves with it once it prints `READY` (its connections are open). */
async function untilReady(command, args) {
  const load = track(command, args)
  const lines = createInterface({ input: load.stdout })
  for await (const line of lines) {
    if (line.startsWith('READY')) return load
  }
  load.kill('SIGKILL')
  throw new Error(`${command} ended before its connections were open`)
}

/**
 * Anonymous RSS growth (see {@link memory}) per connection of server `pid` while a load generator (`command args`, which
 * prints `READY <n>` once its `count` connections are open and then holds them) keeps them
 * idle; read after 2 s for the server to settle (JS objects made, buffers released). The
 * baseline is read after a warm-up: the same generator opens WARM_CONNECTIONS and drops them,
 * so what the server makes once on first use (code paged in, per-thread caches, tables) is not
 * counted per connection. Also gives `openMs`, the time from starting the generator to all
 * connections open.
 */
export async function idleRssPerConnection(pid, command, args, count) {
  const warmArgs = args.map((arg, i) => (args[i - 1] === '--connections' ? String(WARM_CONNECTIONS) : arg))
  const warm = await untilReady(command, warmArgs)
  warm.kill('SIGKILL')
  await new Promise((r) => setTimeout(r, 1500))
  const before = memory(pid)
  const started = performance.now()
  const load = await untilReady(command, args)
  try {
    const openMs = performance.now() - started
    await new Promise((r) => setTimeout(r, 2000))
    const after = memory(pid)
    const detail = `${count} idle, opened in ${Math.round(openMs)} ms, ${growth(before, after)} (after a warm-up of ${WARM_CONNECTIONS})`
    return { value: (after.anon - before.anon) / count, detail, openMs }
  } finally {
    load.kill('SIGKILL')
  }
}

/** A TCP port free on 127.0.0.1 just now. */
export function freePort() {
  return new Promise((resolve, reject) => {
    const server = net.createServer()
    server.on('error', reject)
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address()
      server.close(() => resolve(port))
    })
  })
}

// The runnable programs in examples/: each one is run as a subprocess, as a user would run it
// (`node examples/X.mjs` from the repository root), and must exit 0 having printed the lines that
// prove it did its job. The Redis one runs across two processes against a real redis-server
// started here on loopback, and once without REDIS_URL, where it must say so and exit 0.
// (examples/chat.mjs, the demo, is tested by demo.test.ts.)
import { type ChildProcess, execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { readdirSync, readFileSync } from 'node:fs'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { freePort } from './helpers.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const examplesDir = fileURLToPath(new URL('../examples/', import.meta.url))

interface Run {
  code: number | null
  signal: string | null
  stdout: string
  stderr: string
}

/** Runs `examples/<name>` with Node from the repository root, with `env` over the environment. */
function run(name: string, env: Record<string, string | undefined> = {}): Promise<Run> {
  const merged: Record<string, string | undefined> = { ...process.env, ...env }
  for (const [k, v] of Object.entries(merged)) if (v === undefined) delete merged[k]
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [`examples/${name}`],
      { cwd: root, env: merged, encoding: 'utf8', timeout: 20_000 },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: number | string; signal?: string | null }) | null
        resolve({
          code: e ? (typeof e.code === 'number' ? e.code : null) : 0,
          signal: e?.signal ?? null,
          stdout,
          stderr,
        })
      },
    )
  })
}

/** Asserts a clean exit, showing the example's output when it was not. */
function expectSuccess(r: Run): void {
  const output = `stdout:\n${r.stdout}\nstderr:\n${r.stderr}`
  expect(r.signal, output).toBeNull()
  expect(r.code, output).toBe(0)
}

/** What each example must print (besides exiting 0). */
const EXPECTED: Record<string, RegExp[]> = {
  'client-retry-cookies.mjs': [
    /^attempt 1 got 503: retrying/m,
    /^attempt 2 got 503: retrying/m,
    /^login: 200 welcome after 3 attempts$/m,
    /^cookie jar now holds: session=s3cr3t$/m,
    /^me: 200 you are session s3cr3t$/m,
  ],
  'streaming-progress.mjs': [
    /^upload progress: 1048576 bytes sent$/m,
    /^upload done: server received 1048576 bytes/m,
    /^download progress: 1048576\/1048576 \(100%\)$/m,
    /^done: uploaded 1048576 and downloaded 1048576 bytes with progress, contents verified$/m,
  ],
  'sse.mjs': [
    /^server: \/ticks connection, Last-Event-ID 3, starting at 4$/m,
    /^client: tick 6 \(id 6\)$/m,
    /^client: done event: that is all$/m,
    /^done: received ticks 1,2,3,4,5,6 over 2 connections$/m,
  ],
  'https-mtls.mjs': [
    /^with a client certificate: 200 "hello alice, over TLSv1\.3/m,
    /^without a client certificate: refused \(TlsError, ERR_TLS_HANDSHAKE\)$/m,
    /^done: mutual TLS accepted alice and refused the stranger$/m,
  ],
  'proxy-client.mjs': [
    /^proxy: CONNECT 127\.0\.0\.1:\d+ accepted, tunnelling$/m,
    /^through the proxy: 200 "secret data for \/report/m,
    /^wrong proxy password: ProxyError ERR_PROXY_AUTH_REQUIRED$/m,
    /^done: one request tunnelled through CONNECT, one refused with 407$/m,
  ],
  'websocket-backpressure.mjs': [
    /^connected, extensions: permessage-deflate/m,
    /^flood: received 200 messages \(13107200 bytes\)/m,
    /^upload: sent 32 x 256 KiB with sendAsync, server got 8388608 bytes/m,
    /^done: compressed echo, server drain and client sendAsync all worked$/m,
  ],
  'upgrade-hijack.mjs': [
    /^plain GET: 426 /m,
    /^client: 101 Switching Protocols, upgrade: x-shout$/m,
    /^client got: IS ANYBODY LISTENING\?$/m,
    /^done: the connection was upgraded and spoke x-shout$/m,
  ],
  'raw-tcp-starttls.mjs': [
    /^S: 220 GO$/m,
    /^TLS is on: TLSv1\.3, .*, server certificate CN=mail\.example$/m,
    /^S: 250 secure echo: MAIL FROM:<alice@example>$/m,
    /^done: plain greeting, STARTTLS upgrade in place, encrypted exchange$/m,
  ],
}

describe('examples', () => {
  it('each example is tested here and opens with a comment saying what it shows and how to run it', () => {
    const files = readdirSync(examplesDir).filter((f) => f.endsWith('.mjs') && f !== 'chat.mjs')
    expect(files.sort()).toEqual([...Object.keys(EXPECTED), 'hub-redis.mjs'].sort())
    for (const f of files) {
      const text = readFileSync(`${examplesDir}${f}`, 'utf8')
      expect(text.startsWith('// '), f).toBe(true)
      expect(text, f).toMatch(new RegExp(`^// Run: .*node examples/${f.replace('.', '\\.')}`, 'm'))
      // Only the public API: the package's own entry points, never its build output or sources.
      expect(text, f).not.toMatch(/from '\.\.?\/|dist\/|src-ts/)
    }
  })

  for (const [name, lines] of Object.entries(EXPECTED)) {
    it(`${name} runs and exits 0`, async () => {
      const r = await run(name)
      expectSuccess(r)
      for (const line of lines) expect(r.stdout).toMatch(line)
    })
  }
})

describe('examples/hub-redis.mjs', () => {
  let redis: ChildProcess | undefined
  let redisUrl = ''

  beforeAll(async () => {
    const port = await freePort()
    redis = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], {
      stdio: ['ignore', 'pipe', 'pipe'],
    })
    const lines = createInterface({ input: redis.stdout as NodeJS.ReadableStream })
    const exited = once(redis, 'exit').then(() => {
      throw new Error('redis-server exited before it was ready')
    })
    const ready = new Promise<void>((resolve) => {
      lines.on('line', (l) => {
        if (/Ready to accept connections/.test(l)) resolve()
      })
    })
    await Promise.race([ready, exited])
    redisUrl = `redis://127.0.0.1:${port}`
  })

  afterAll(() => {
    if (redis && redis.exitCode === null) redis.kill('SIGKILL')
  })

  it('relays rooms between two processes through Redis', async () => {
    const r = await run('hub-redis.mjs', { REDIS_URL: redisUrl, HUB_CHANNEL: undefined })
    expectSuccess(r)
    const pids = /^main: pid (\d+) on port \d+; worker: pid (\d+) on port \d+$/m.exec(r.stdout)
    expect(pids).not.toBeNull()
    expect(pids?.[1]).not.toBe(pids?.[2])
    expect(r.stdout).toMatch(/^main: room news has 1 member here and 2 across both processes$/m)
    expect(r.stdout).toMatch(/^bob \(news, on worker\) got: hello from main$/m)
    expect(r.stdout).toMatch(/^alice \(news, on main\) got: news from the worker$/m)
    expect(r.stdout).toMatch(/^carol \(sports, on worker\) got: goal! \(from the worker\)$/m)
    expect(r.stdout).toMatch(/^done: rooms spanned two processes through Redis$/m)
  })

  it('says what it needs and exits 0 without REDIS_URL', async () => {
    const r = await run('hub-redis.mjs', { REDIS_URL: undefined })
    expectSuccess(r)
    expect(r.stdout).toMatch(/^REDIS_URL is not set: skipping/m)
  })
})

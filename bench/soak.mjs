// `npm run soak` (node --expose-gc bench/soak.mjs): a long-running memory soak of hypersock.
//
// This process hosts every hypersock server and hub; the load comes from a child process (this
// same file run with `--client`: undici for HTTP, the `ws` package for WebSocket), so the RSS
// sampled here is the server's alone. Three phases, each a series of rounds; after every round:
// global.gc(), wait 1 s, sample process.memoryUsage().rss.
//   1. http:  10 rounds of 100,000 keep-alive requests (50 connections) to a serve() server:
//             plain text, JSON, a streamed body, a 404 and a POST echo, in turn.
//   2. ws:    100 rounds of 2,000 WebSocket connections (connect, send one message, read the echo,
//             close) to the same server, whose Hub joins every connection to a room on open and
//             publishes to the room on every 20th message.
//   3. redis: two hubs (two servers of this process) relaying through a RedisAdapter on a
//             redis-server started here on a free loopback port, 10 members on each; 10 rounds of:
//             publish from both hubs for 2 s, SIGKILL redis-server, publish for 1 s more, restart it
//             on the same port, wait for both adapters' `reconnect` and for a publish to cross
//             through Redis again, then check that local delivery lost nothing.
// A phase FAILS when its RSS after the last round is more than 20% above its RSS after the
// second round, when any request, connection or publish failed, or when it overruns its hard
// time limit (http 10 min, ws 10 min, redis 5 min). The exit code is 1 if any phase failed.
// SOAK_SCALE=0.01 multiplies every count (requests, connections, rounds; rounds stay >= 3).
import { fileURLToPath } from 'node:url'
import { ensureTools, freePort, killAll, spawnRedis, track } from './lib/proc.mjs'

const SELF = fileURLToPath(import.meta.url)
const MiB = 2 ** 20
const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms))

const SCALE = readScale(process.env.SOAK_SCALE)
const count = (n) => Math.max(1, Math.round(n * SCALE))
const roundsOf = (n) => Math.max(3, Math.round(n * SCALE))

const HTTP = { rounds: roundsOf(10), requests: count(100_000), connections: 50, limitMs: 10 * 60_000 }
const WS = { rounds: roundsOf(100), connections: count(2_000), concurrency: 100, limitMs: 10 * 60_000 }
const REDIS = { rounds: roundsOf(10), members: 10, publishMs: 2_000, outageMs: 1_000, limitMs: 5 * 60_000 }
/** Largest RSS growth allowed from the second round to the last. */
const MAX_GROWTH = 0.2

// What the HTTP handlers answer, known to the client too.
const TEXT = 'hello world'
const STREAM_CHUNK = 'x'.repeat(1024)
const STREAM_CHUNKS = 4
const NOT_FOUND = 'not found'

function readScale(raw) {
  if (raw === undefined || raw === '') return 1
  const scale = Number(raw)
  if (!Number.isFinite(scale) || scale <= 0 || scale > 10) {
    throw new Error(`SOAK_SCALE must be a number above 0 and at most 10, not ${JSON.stringify(raw)}`)
  }
  return scale
}

// ---------------------------------------------------------------------------------------------
// The client process: runs the load it is asked for over IPC and answers with what it saw.
// ---------------------------------------------------------------------------------------------

async function clientMain() {
  // Never outlive the server process.
  process.on('disconnect', () => process.exit(0))
  const { Pool } = await import('undici')
  const { default: WebSocket } = await import('ws')
  let pool
  const members = new Map()

  const commands = {
    async http({ origin, requests, connections }) {
      pool ??= new Pool(origin, { connections, pipelining: 1, headersTimeout: 30_000, bodyTimeout: 30_000 })
      return httpLoad(pool, requests, connections)
    },
    async closeHttp() {
      await pool?.close()
      pool = undefined
      return {}
    },
    ws: (args) => wsLoad(WebSocket, args),
    members: (args) => openMembers(WebSocket, members, args),
    markers: (args) => markers(members, args),
    counts: (args) => counts(members, args),
    async closeMembers() {
      for (const group of members.values()) for (const m of group) m.ws.close(1000)
      members.clear()
      return {}
    },
  }
  process.on('message', async ({ id, cmd, args }) => {
    try {
      process.send({ id, result: await commands[cmd](args) })
    } catch (error) {
      process.send({ id, error: error.stack ?? String(error) })
    }
  })
}

/** Records up to 10 distinct error messages (with counts) of a load run. */
function errorBook() {
  const book = { count: 0, samples: {} }
  book.add = (message) => {
    book.count++
    const key = String(message).slice(0, 200)
    if (key in book.samples || Object.keys(book.samples).length < 10) book.samples[key] = (book.samples[key] ?? 0) + 1
  }
  return book
}

/** `requests` requests over `connections` keep-alive connections, the five kinds in turn. */
async function httpLoad(pool, requests, connections) {
  const errors = errorBook()
  const statuses = {}
  const streamBody = STREAM_CHUNK.repeat(STREAM_CHUNKS)
  let next = 0
  const one = async (i) => {
    const kind = i % 5
    const echo = kind === 4 ? `echo ${i} ${'y'.repeat(200 + (i % 300))}` : undefined
    const path = ['/text', '/json', '/stream', '/missing', '/echo'][kind]
    const { statusCode, body } = await pool.request({
      path: kind === 3 ? `${path}/${i}` : path,
      method: echo ? 'POST' : 'GET',
      body: echo,
      headers: echo ? { 'content-type': 'text/plain' } : undefined,
    })
    const text = await body.text()
    statuses[statusCode] = (statuses[statusCode] ?? 0) + 1
    const expected = [
      [200, TEXT],
      [200, null],
      [200, streamBody],
      [404, NOT_FOUND],
      [200, echo],
    ][kind]
    if (statusCode !== expected[0]) throw new Error(`${path}: status ${statusCode}, wanted ${expected[0]}`)
    if (kind === 1) {
      const doc = JSON.parse(text)
      if (doc.ok !== true || doc.items?.length !== 20) throw new Error(`/json: unexpected body ${text.slice(0, 80)}`)
    } else if (text !== expected[1]) {
      throw new Error(`${path}: unexpected body of ${text.length} bytes: ${text.slice(0, 60)}`)
    }
  }
  const worker = async () => {
    while (next < requests) {
      const i = next++
      try {
        await one(i)
      } catch (error) {
        errors.add(error.message)
      }
    }
  }
  const started = performance.now()
  await Promise.all(Array.from({ length: Math.min(connections, requests) }, worker))
  const seconds = (performance.now() - started) / 1000
  return { done: requests, seconds, rate: requests / seconds, errors: errors.count, samples: errors.samples, statuses }
}

/** `connections` WebSockets, `concurrency` at a time: connect, send, wait for the echo, close. */
async function wsLoad(WebSocket, { url, connections, concurrency, round }) {
  const errors = errorBook()
  let published = 0
  let next = 0
  const one = (i) =>
    new Promise((resolve) => {
      const text = `hello ${round}/${i}`
      const ws = new WebSocket(url, { perMessageDeflate: false, handshakeTimeout: 10_000 })
      let echoed = false
      let failed = false
      const fail = (why) => {
        if (!failed) errors.add(why)
        failed = true
        ws.terminate()
      }
      const timer = setTimeout(() => fail('no echo and close within 15 s'), 15_000)
      ws.on('open', () => ws.send(text))
      ws.on('message', (data, isBinary) => {
        const got = data.toString()
        if (!isBinary && got === text) {
          echoed = true
          ws.close(1000, 'done')
        } else if (!isBinary && got.startsWith('pub:')) published++
        else fail(`unexpected message: ${got.slice(0, 40)}`)
      })
      ws.on('error', (error) => fail(`error: ${error.message}`))
      ws.on('close', (code) => {
        clearTimeout(timer)
        if (!failed && !echoed) fail(`closed with ${code} before the echo`)
        else if (!failed && code !== 1000) fail(`closed with ${code} after the echo, wanted 1000`)
        resolve()
      })
    })
  const worker = async () => {
    while (next < connections) await one(next++)
  }
  const started = performance.now()
  await Promise.all(Array.from({ length: Math.min(concurrency, connections) }, worker))
  const seconds = (performance.now() - started) / 1000
  return {
    done: connections,
    seconds,
    rate: connections / seconds,
    errors: errors.count,
    samples: errors.samples,
    published,
  }
}

/**
 * Opens `n` member connections to each server of `groups` ({ name, url, n }); every member
 * records, per publisher and round, how many messages it got, whether they came in order, and
 * which markers arrived. Messages are `<hub>:<round>:<seq>`, markers `m:<hub>:<round>:<k>`.
 */
async function openMembers(WebSocket, members, { groups }) {
  const opening = []
  for (const { name, url, n } of groups) {
    const group = []
    members.set(name, group)
    for (let i = 0; i < n; i++) {
      const m = { ws: new WebSocket(url, { perMessageDeflate: false }), got: new Map(), marks: new Set(), bad: [] }
      m.ws.on('message', (data) => {
        const parts = data.toString().split(':')
        if (parts[0] === 'm') {
          m.marks.add(`${parts[1]}:${parts[2]}`)
          return
        }
        const key = `${parts[0]}:${parts[1]}`
        const seq = Number(parts[2])
        const seen = m.got.get(key) ?? { count: 0, last: -1, disorder: 0 }
        if (!(seq > seen.last)) seen.disorder++
        seen.count++
        seen.last = seq
        m.got.set(key, seen)
      })
      m.ws.on('error', (error) => m.bad.push(`${name} member: ${error.message}`))
      m.ws.on('close', (code) => m.bad.push(`${name} member closed (${code})`))
      opening.push(
        new Promise((resolve, reject) => {
          m.ws.once('open', resolve)
          m.ws.once('error', reject)
        }),
      )
      group.push(m)
    }
  }
  await Promise.all(opening)
  return {}
}

/** Whether every member of each group saw a marker of `round` from `from` (`{ A: 'b', B: 'a' }`). */
function markers(members, { round, want }) {
  const out = {}
  for (const [name, from] of Object.entries(want)) {
    out[name] = members.get(name).every((m) => m.marks.has(`${from}:${round}`))
  }
  return out
}

/** Per group: min and max of the messages of `round` got from each hub, and order violations. */
function counts(members, { round }) {
  const out = {}
  for (const [name, group] of members) {
    const entry = { bad: group.flatMap((m) => m.bad) }
    for (const hub of ['a', 'b']) {
      const got = group.map((m) => m.got.get(`${hub}:${round}`) ?? { count: 0, disorder: 0 })
      entry[hub] = {
        min: Math.min(...got.map((g) => g.count)),
        max: Math.max(...got.map((g) => g.count)),
        disorder: got.reduce((sum, g) => sum + g.disorder, 0),
      }
    }
    out[name] = entry
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// The server process (this one): hosts the servers and hubs, drives the client, samples RSS.
// ---------------------------------------------------------------------------------------------

/** The client child process with a promise-returning `ask(cmd, args)`. */
function startClient() {
  const child = track(process.execPath, [SELF, '--client'], { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
  const pending = new Map()
  let nextId = 1
  child.on('message', ({ id, result, error }) => {
    const p = pending.get(id)
    pending.delete(id)
    if (error) p?.reject(new Error(`client: ${error}`))
    else p?.resolve(result)
  })
  child.exited.then(({ code, signal }) => {
    for (const p of pending.values()) p.reject(new Error(`the client process exited (${signal ?? `exit ${code}`})`))
    pending.clear()
  })
  return {
    pid: child.pid,
    ask(cmd, args = {}) {
      return new Promise((resolve, reject) => {
        const id = nextId++
        pending.set(id, { resolve, reject })
        child.send({ id, cmd, args })
      })
    },
    kill() {
      child.kill('SIGKILL')
    },
  }
}

const mib = (bytes) => (bytes / MiB).toFixed(1)

/** gc, wait 1 s, then this process's memory. */
async function sample() {
  global.gc?.()
  await sleep(1000)
  return process.memoryUsage()
}

/** A phase's record: RSS series, error count and samples, failure. */
function phaseRecord(name, rounds, unit) {
  return { name, rounds, unit, series: [], errors: 0, samples: {}, notes: [], failure: null, wallMs: 0, closed: false }
}

function addErrors(phase, n, samples = {}) {
  if (phase.closed) return
  phase.errors += n
  for (const [message, times] of Object.entries(samples)) {
    if (message in phase.samples || Object.keys(phase.samples).length < 20) {
      phase.samples[message] = (phase.samples[message] ?? 0) + times
    }
  }
}

function note(phase, text) {
  if (!phase.closed) phase.notes.push(text)
}

/** Samples and prints one round's line. */
async function roundDone(phase, round, rate, extra = '') {
  const mem = await sample()
  // Work still running after the phase's time limit no longer counts.
  if (phase.closed) return
  phase.series.push({ round, rss: mem.rss, heap: mem.heapUsed, external: mem.external, rate })
  const line = [
    `${phase.name.padEnd(5)} round ${String(round).padStart(3)}/${phase.rounds}`,
    `RSS ${mib(mem.rss).padStart(7)} MiB`,
    `heap ${mib(mem.heapUsed).padStart(6)} MiB`,
    `external ${mib(mem.external).padStart(6)} MiB`,
    `${Math.round(rate).toLocaleString('en-US').padStart(8)} ${phase.unit}`,
    `errors ${phase.errors}`,
  ]
  console.log(`${line.join('  ')}${extra ? `  ${extra}` : ''}`)
}

/** Runs a phase under its hard time limit; a timeout or a thrown error fails the phase. */
async function runPhase(phase, limitMs, body) {
  const state = { aborted: false, client: startClient() }
  const started = Date.now()
  let timer
  const limit = new Promise((_, reject) => {
    timer = setTimeout(() => {
      state.aborted = true
      phase.closed = true
      reject(new Error(`hard time limit of ${limitMs / 1000} s reached after ${phase.series.length} rounds`))
    }, limitMs)
  })
  const work = body(state)
  work.catch(() => {}) // after a timeout nobody awaits it any more
  try {
    await Promise.race([work, limit])
  } catch (error) {
    phase.failure = error.message
    console.log(`${phase.name}: FAILED: ${error.message}`)
  } finally {
    clearTimeout(timer)
    phase.wallMs = Date.now() - started
    state.client.kill()
  }
}

/** Polls `ready()` every 20 ms until it is true; false after `ms`. */
async function until(ready, ms) {
  const end = Date.now() + ms
  while (!(await ready())) {
    if (Date.now() > end) return false
    await sleep(20)
  }
  return true
}

function streamBody() {
  return (async function* () {
    for (let i = 0; i < STREAM_CHUNKS; i++) {
      await null
      yield Buffer.from(STREAM_CHUNK)
    }
  })()
}

/** The HTTP + WebSocket server of phases 1 and 2, with its counters. */
async function startMainServer(api) {
  const counters = { handlerErrors: 0, wsOpen: 0, wsClose: 0, wsMessages: 0, wsErrors: 0, published: 0, pubDropped: 0 }
  const hub = new api.Hub()
  const items = Array.from({ length: 20 }, (_, i) => ({ id: i, name: `item-${i}` }))
  const server = await api.serve({
    port: 0,
    hostname: '127.0.0.1',
    async fetch(req) {
      switch (req.path) {
        case '/text':
          return TEXT
        case '/json':
          return {
            status: 200,
            headers: { 'content-type': 'application/json' },
            body: JSON.stringify({ ok: true, at: Date.now(), items }),
          }
        case '/stream':
          return { status: 200, headers: { 'content-type': 'text/plain' }, body: streamBody() }
        case '/echo':
          if (req.method === 'POST') {
            return { status: 200, headers: { 'content-type': 'text/plain' }, body: await req.bytes() }
          }
          return { status: 405, body: 'POST only' }
        default:
          return { status: 404, headers: { 'content-type': 'text/plain' }, body: NOT_FOUND }
      }
    },
    error(error) {
      counters.handlerErrors++
      if (counters.handlerErrors <= 5) console.log(`server: handler error: ${error?.message}`)
    },
    websocket: {
      hub,
      open(ws) {
        counters.wsOpen++
        ws.data = `room-${ws.id % 16}`
        hub.join(ws, ws.data)
      },
      message(ws, data) {
        ws.send(data)
        if (++counters.wsMessages % 20 === 0) {
          const r = hub.publish(ws.data, `pub:${counters.wsMessages}`)
          counters.published += r.sent
          counters.pubDropped += r.skipped + r.dropped
        }
      },
      close() {
        counters.wsClose++
      },
      error(_ws, error) {
        counters.wsErrors++
        if (counters.wsErrors <= 5) console.log(`server: WebSocket error: ${error?.code} ${error?.message}`)
      },
    },
  })
  return { server, hub, counters }
}

async function httpPhase(main, phase) {
  await runPhase(phase, HTTP.limitMs, async (state) => {
    const origin = `http://127.0.0.1:${main.server.port}`
    const before = main.server.stats()
    for (let round = 1; round <= HTTP.rounds && !state.aborted; round++) {
      const r = await state.client.ask('http', { origin, requests: HTTP.requests, connections: HTTP.connections })
      addErrors(phase, r.errors, r.samples)
      await roundDone(phase, round, r.rate, `(${r.seconds.toFixed(1)} s)`)
    }
    await state.client.ask('closeHttp')
    const after = main.server.stats()
    const requests = after.requestsTotal - before.requestsTotal
    const r5xx = after.responses['5xx'] - before.responses['5xx']
    note(
      phase,
      `server counted ${requests.toLocaleString('en-US')} requests, ` +
        `${(after.responses['2xx'] - before.responses['2xx']).toLocaleString('en-US')} 2xx, ` +
        `${(after.responses['4xx'] - before.responses['4xx']).toLocaleString('en-US')} 4xx, ${r5xx} 5xx, ` +
        `${after.rejectedOverload - before.rejectedOverload} overload 503s, ${after.timeouts - before.timeouts} timeouts`,
    )
    const expected = HTTP.rounds * HTTP.requests
    if (requests !== expected) addErrors(phase, 1, { [`server counted ${requests} requests, sent ${expected}`]: 1 })
    if (r5xx > 0) addErrors(phase, r5xx, { '5xx responses': r5xx })
    if (main.counters.handlerErrors > 0) addErrors(phase, main.counters.handlerErrors, { 'handler errors': 1 })
  })
}

async function wsPhase(main, phase) {
  await runPhase(phase, WS.limitMs, async (state) => {
    const url = `ws://127.0.0.1:${main.server.port}/ws`
    for (let round = 1; round <= WS.rounds && !state.aborted; round++) {
      const r = await state.client.ask('ws', { url, connections: WS.connections, concurrency: WS.concurrency, round })
      addErrors(phase, r.errors, r.samples)
      // Every connection was closed by its client: the server must let go of all of them.
      const drained = await until(() => main.server.webSocketCount === 0 && main.hub.size === 0, 10_000)
      if (!drained) {
        addErrors(phase, 1, {
          [`round ${round}: ${main.server.webSocketCount} WebSockets (hub: ${main.hub.size}) still open 10 s after the clients closed`]: 1,
        })
      }
      await roundDone(phase, round, r.rate, `(${r.seconds.toFixed(1)} s, ${r.published} room publishes received)`)
    }
    const c = main.counters
    note(
      phase,
      `server: ${c.wsOpen.toLocaleString('en-US')} opens, ${c.wsClose.toLocaleString('en-US')} closes, ` +
        `${c.wsMessages.toLocaleString('en-US')} messages, ${c.published.toLocaleString('en-US')} room deliveries queued ` +
        `(${c.pubDropped} skipped or dropped), ${c.wsErrors} error events`,
    )
    const expected = WS.rounds * WS.connections
    if (c.wsOpen !== expected || c.wsClose !== expected || c.wsMessages !== expected) {
      addErrors(phase, 1, {
        [`server saw ${c.wsOpen} opens, ${c.wsClose} closes, ${c.wsMessages} messages; wanted ${expected} each`]: 1,
      })
    }
    if (c.wsErrors > 0) addErrors(phase, c.wsErrors, { 'server WebSocket error events': c.wsErrors })
  })
}

/** Starts redis-server on `port` (tracked: killed on exit) and resolves once it accepts connections. */
async function startRedis(port) {
  const child = spawnRedis(port)
  let text = ''
  const ready = await new Promise((resolve) => {
    const timer = setTimeout(
      () => resolve(`no "Ready to accept connections" within 10 s:\n${text.slice(-2000)}`),
      10_000,
    )
    child.stdout.on('data', (chunk) => {
      text += chunk
      if (/Ready to accept connections/.test(text)) {
        clearTimeout(timer)
        child.stdout.resume()
        resolve(true)
      }
    })
    child.stderr.on('data', (chunk) => {
      text += chunk
    })
    child.exited.then(({ code, signal, error }) => {
      clearTimeout(timer)
      resolve(`redis-server exited (${error?.message ?? signal ?? `exit ${code}`}):\n${text.slice(-2000)}`)
    })
  })
  if (ready !== true) {
    child.kill('SIGKILL')
    throw new Error(ready)
  }
  return child
}

/** A hub relaying through Redis at `url` on a WebSocket server of this process, with its adapter's events counted. */
async function redisHub(api, url, channel) {
  const adapter = new api.RedisAdapter({ url, channel })
  const events = { errors: 0, reconnects: 0, lastError: '' }
  adapter.on('error', (error) => {
    events.errors++
    events.lastError = error.message
  })
  adapter.on('reconnect', () => {
    events.reconnects++
  })
  const hub = new api.Hub({ adapter })
  const server = await api.serveWebSocket({
    port: 0,
    hostname: '127.0.0.1',
    hub,
    open(ws) {
      hub.join(ws, 'outage')
    },
  })
  return { adapter, hub, server, events, url: `ws://127.0.0.1:${server.port}/` }
}

async function redisPhase(api, phase) {
  let redis
  const servers = []
  try {
    await runPhase(phase, REDIS.limitMs, async (state) => {
      await ensureTools({ 'redis-server': 'redis-server' })
      const port = await freePort()
      redis = await startRedis(port)
      const url = `redis://127.0.0.1:${port}`
      const channel = `soak-${process.pid}-${port}`
      const a = await redisHub(api, url, channel)
      servers.push(a.server)
      const b = await redisHub(api, url, channel)
      servers.push(b.server)
      const hubs = { a, b }
      await Promise.all([a.adapter.ready(), b.adapter.ready()])
      const { ask } = state.client
      await ask('members', {
        groups: [
          { name: 'A', url: a.url, n: REDIS.members },
          { name: 'B', url: b.url, n: REDIS.members },
        ],
      })
      const joined = await until(
        () => a.hub.roomSize('outage') === REDIS.members && b.hub.roomSize('outage') === REDIS.members,
        10_000,
      )
      if (!joined) throw new Error('the members did not all join their rooms within 10 s')

      for (let round = 1; round <= REDIS.rounds && !state.aborted; round++) {
        const published = { a: 0, b: 0 }
        let publishErrors = 0
        const publishSamples = {}
        // 10 messages from each hub every 10 ms: about 1,000 publishes/s per hub.
        const publish = () => {
          for (const [name, h] of Object.entries(hubs)) {
            for (let k = 0; k < 10; k++) {
              try {
                const r = h.hub.publish('outage', `${name}:${round}:${published[name]++}`)
                if (r.sent !== REDIS.members || r.skipped || r.dropped) {
                  publishErrors++
                  const key = `publish on hub ${name} sent ${r.sent}, skipped ${r.skipped}, dropped ${r.dropped}`
                  publishSamples[key] = (publishSamples[key] ?? 0) + 1
                }
              } catch (error) {
                publishErrors++
                publishSamples[`publish threw: ${error.message}`] =
                  (publishSamples[`publish threw: ${error.message}`] ?? 0) + 1
              }
            }
          }
        }
        const started = performance.now()
        const ticker = setInterval(publish, 10)
        const errorsBefore = a.events.errors + b.events.errors
        const reconnectsBefore = { a: a.events.reconnects, b: b.events.reconnects }
        await sleep(REDIS.publishMs)
        redis.kill('SIGKILL')
        await redis.exited
        await sleep(REDIS.outageMs)
        clearInterval(ticker)
        const publishSeconds = (performance.now() - started) / 1000
        const killedAt = performance.now()
        redis = await startRedis(port)
        const reconnected = await until(
          () =>
            a.events.reconnects > reconnectsBefore.a &&
            b.events.reconnects > reconnectsBefore.b &&
            a.adapter.connected &&
            b.adapter.connected,
          30_000,
        )
        if (!reconnected) {
          throw new Error(
            `round ${round}: the adapters did not reconnect within 30 s of the restart ` +
              `(a: ${a.events.reconnects - reconnectsBefore.a} reconnects, connected ${a.adapter.connected}; ` +
              `b: ${b.events.reconnects - reconnectsBefore.b}, ${b.adapter.connected}; last error: ${a.events.lastError})`,
          )
        }
        const reconnectMs = performance.now() - killedAt
        // Until a marker of each hub has crossed through Redis to every member of the other.
        let k = 0
        const crossed = await until(async () => {
          a.hub.publish('outage', `m:a:${round}:${k}`)
          b.hub.publish('outage', `m:b:${round}:${k++}`)
          await sleep(100)
          const seen = await ask('markers', { round, want: { A: 'b', B: 'a' } })
          return seen.A && seen.B
        }, 30_000)
        if (!crossed) throw new Error(`round ${round}: no publish crossed through Redis within 30 s of the reconnect`)
        const deliveredMs = performance.now() - killedAt
        // Local delivery must have lost nothing; relayed delivery may miss what the outage ate,
        // but never duplicates or reorders.
        const got = await ask('counts', { round })
        const problems = []
        for (const [group, own, other] of [
          ['A', 'a', 'b'],
          ['B', 'b', 'a'],
        ]) {
          const g = got[group]
          if (g[own].min !== published[own] || g[own].max !== published[own]) {
            problems.push(`${group} members got ${g[own].min}..${g[own].max} of ${published[own]} local publishes`)
          }
          if (g[other].max > published[other]) {
            problems.push(`${group} members got up to ${g[other].max} of ${published[other]} relayed publishes`)
          }
          if (g[own].disorder || g[other].disorder) {
            problems.push(`${group} members got ${g[own].disorder + g[other].disorder} messages out of order or twice`)
          }
          for (const bad of g.bad) problems.push(bad)
        }
        for (const p of problems) publishSamples[`round ${round}: ${p}`] = 1
        addErrors(phase, publishErrors + problems.length, publishSamples)
        const relayed = Math.min(got.A.b.min / published.b, got.B.a.min / published.a)
        const rate = (published.a + published.b) / publishSeconds
        await roundDone(
          phase,
          round,
          rate,
          `(${published.a + published.b} publishes, ${(relayed * 100).toFixed(0)}% relayed, ` +
            `${a.events.errors + b.events.errors - errorsBefore} adapter error events, ` +
            `reconnected ${Math.round(reconnectMs)} ms and relaying ${Math.round(deliveredMs)} ms after the restart began)`,
        )
      }
      await ask('closeMembers')
    })
  } finally {
    redis?.kill('SIGKILL')
    for (const server of servers) await server.stop({ graceful: false }).catch(() => {})
  }
}

/** One summary line per phase, and whether it passed. */
function verdict(phase) {
  const reasons = []
  if (phase.failure) reasons.push(phase.failure)
  if (phase.errors > 0) reasons.push(`${phase.errors} errors`)
  const s = phase.series
  let growth = null
  if (s.length >= 2) {
    growth = s.at(-1).rss / s[1].rss - 1
    if (growth > MAX_GROWTH) {
      reasons.push(
        `RSS grew ${(growth * 100).toFixed(1)}% from round 2 (${mib(s[1].rss)} MiB) to round ${s.at(-1).round} ` +
          `(${mib(s.at(-1).rss)} MiB), over the ${MAX_GROWTH * 100}% limit`,
      )
    }
  } else reasons.push('fewer than 2 rounds completed')
  if (s.length < phase.rounds && !phase.failure) reasons.push(`only ${s.length} of ${phase.rounds} rounds ran`)
  return { pass: reasons.length === 0, growth, reasons }
}

async function main() {
  const t0 = Date.now()
  // No child (client, redis-server) outlives this process, however it ends.
  process.on('exit', killAll)
  for (const signal of ['SIGINT', 'SIGTERM']) {
    process.on(signal, () => {
      console.log(`soak: ${signal}, stopping`)
      killAll()
      process.exit(130)
    })
  }
  const api = await import('../dist/index.js')
  if (!global.gc)
    console.log('soak: WARNING: run with node --expose-gc (npm run soak) so that RSS is sampled after a gc')
  console.log(
    `soak: SOAK_SCALE=${SCALE}: http ${HTTP.rounds} x ${HTTP.requests} requests (${HTTP.connections} keep-alive connections), ` +
      `ws ${WS.rounds} x ${WS.connections} connections (${WS.concurrency} at a time), ` +
      `redis ${REDIS.rounds} outages (${REDIS.members} members on each of 2 hubs)`,
  )
  console.log(
    `soak: servers, hubs and RSS in this process (pid ${process.pid}); load from a child process ` +
      '(undici for HTTP, ws for WebSocket) started per phase; RSS sampled after gc + 1 s',
  )
  const baseline = await sample()
  console.log(`soak: baseline RSS ${mib(baseline.rss)} MiB, heap ${mib(baseline.heapUsed)} MiB`)

  const phases = [
    phaseRecord('http', HTTP.rounds, 'req/s'),
    phaseRecord('ws', WS.rounds, 'conn/s'),
    phaseRecord('redis', REDIS.rounds, 'publish/s'),
  ]
  const main = await startMainServer(api)
  try {
    await httpPhase(main, phases[0])
    await wsPhase(main, phases[1])
  } finally {
    await Promise.race([main.server.stop({ graceful: false }), sleep(15_000)])
  }
  await redisPhase(api, phases[2])

  console.log('\nsoak: summary')
  let pass = true
  for (const phase of phases) {
    const v = verdict(phase)
    pass &&= v.pass
    const s = phase.series
    const rss = s.map((x) => mib(x.rss)).join(' ')
    const rates = s.map((x) => x.rate)
    const mean = rates.length ? rates.reduce((x, y) => x + y, 0) / rates.length : 0
    console.log(
      `${phase.name}: ${v.pass ? 'PASS' : 'FAIL'}  rounds ${s.length}/${phase.rounds}  ` +
        `RSS round 2 ${s[1] ? mib(s[1].rss) : '-'} MiB -> last ${s.length ? mib(s.at(-1).rss) : '-'} MiB ` +
        `(${v.growth == null ? 'n/a' : `${v.growth >= 0 ? '+' : ''}${(v.growth * 100).toFixed(1)}%`}, limit +${MAX_GROWTH * 100}%)  ` +
        `max ${s.length ? mib(Math.max(...s.map((x) => x.rss))) : '-'} MiB  ` +
        `mean ${Math.round(mean).toLocaleString('en-US')} ${phase.unit}  errors ${phase.errors}  ` +
        `wall ${(phase.wallMs / 1000).toFixed(0)} s`,
    )
    console.log(`  RSS MiB series: ${rss}`)
    for (const note of phase.notes) console.log(`  ${note}`)
    for (const [message, times] of Object.entries(phase.samples)) console.log(`  error x${times}: ${message}`)
    for (const reason of v.reasons) console.log(`  FAIL: ${reason}`)
  }
  console.log(`soak: ${pass ? 'PASS' : 'FAIL'} in ${((Date.now() - t0) / 1000).toFixed(0)} s`)
  killAll()
  process.exit(pass ? 0 : 1)
}

if (process.argv[2] === '--client') {
  await clientMain()
} else {
  try {
    await main()
  } catch (error) {
    console.log(`soak: FAILED: ${error.stack ?? error.message}`)
    killAll()
    process.exit(1)
  }
}

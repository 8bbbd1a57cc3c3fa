// Hub rooms across two processes through Redis. This script starts a second process of itself
// (child_process.fork); each process runs a WebSocket server whose Hub relays publishes through a
// `RedisAdapter`, so a room's members get its messages whichever process they are connected to.
// Clients join a room with `?room=...`. The main process then publishes to `news`, the worker
// publishes to `news` and `sports`, `clusterRoomSize` counts members on both processes, and each
// client shows what it got.
//
// Needs a Redis server: without REDIS_URL the example says so and exits (status 0).
// Run: REDIS_URL=redis://127.0.0.1:6379 node examples/hub-redis.mjs   (from the repository root)
import { fork } from 'node:child_process'
import { once } from 'node:events'
import { fileURLToPath } from 'node:url'
import { Hub, RedisAdapter, serveWebSocket, WebSocket } from 'hypersock'

const REDIS_URL = process.env.REDIS_URL
if (!REDIS_URL) {
  console.log('REDIS_URL is not set: skipping. This example needs a Redis server, e.g.')
  console.log('  REDIS_URL=redis://127.0.0.1:6379 node examples/hub-redis.mjs')
  process.exit(0)
}
const isWorker = process.argv[2] === 'worker'
const name = isWorker ? 'worker' : 'main'
// Processes with the same channel share rooms; a fresh one keeps this run to itself.
const channel = process.env.HUB_CHANNEL ?? `hypersock-example-${process.pid}`

/** A WebSocket server whose hub relays through Redis; resolves once subscribed. */
async function startNode() {
  const adapter = new RedisAdapter({ url: REDIS_URL, channel })
  adapter.on('error', (e) => console.error(`${name}: Redis: ${e.message}`))
  const hub = new Hub({ adapter })
  const server = await serveWebSocket({
    port: 0,
    hostname: '127.0.0.1',
    hub,
    open(ws) {
      const room = new URL(ws.url, 'http://localhost').searchParams.get('room') ?? 'lobby'
      hub.join(ws, room)
      ws.send(`joined ${room} on the ${name} process (pid ${process.pid})`)
    },
  })
  await adapter.ready()
  return { hub, server }
}

if (isWorker) {
  // The worker: reports its port, then publishes when the main process asks.
  const { hub, server } = await startNode()
  process.on('message', async (m) => {
    if (m.type === 'publish') {
      const { sent } = hub.publish(m.room, m.text)
      process.send({ type: 'published', sent })
    } else if (m.type === 'stop') {
      await server.stop({ graceful: false })
      process.disconnect() // nothing holds the worker open any more: it exits
    }
  })
  process.send({ type: 'listening', port: server.port })
} else {
  const worker = fork(fileURLToPath(import.meta.url), ['worker'], { env: { ...process.env, HUB_CHANNEL: channel } })
  const fromWorker = (type) =>
    new Promise((resolve, reject) => {
      const onMessage = (m) => {
        if (m.type !== type) return
        worker.off('message', onMessage)
        worker.off('exit', onExit)
        resolve(m)
      }
      const onExit = (code) => reject(new Error(`worker exited (${code}) before sending ${type}`))
      worker.on('message', onMessage)
      worker.on('exit', onExit)
    })
  const workerPort = (await fromWorker('listening')).port
  const { hub, server } = await startNode()
  console.log(`main: pid ${process.pid} on port ${server.port}; worker: pid ${worker.pid} on port ${workerPort}`)

  /** A client in `room` on the server at `port`, open and joined when it resolves. */
  async function member(who, port, room) {
    const ws = new WebSocket(`ws://127.0.0.1:${port}/?room=${room}`)
    const messages = ws[Symbol.asyncIterator]()
    const next = async () => {
      const text = (await messages.next()).value
      console.log(`${who} got: ${text}`)
      return text
    }
    await next() // the "joined" greeting: the server has put it in the room
    return { ws, next }
  }
  const alice = await member('alice (news, on main)', server.port, 'news')
  const bob = await member('bob (news, on worker)', workerPort, 'news')
  const carol = await member('carol (sports, on worker)', workerPort, 'sports')

  const size = await hub.clusterRoomSize('news')
  console.log(`main: room news has ${hub.roomSize('news')} member here and ${size} across both processes`)

  hub.publish('news', 'hello from main')
  const got = [await alice.next(), await bob.next()]

  worker.send({ type: 'publish', room: 'news', text: 'news from the worker' })
  await fromWorker('published')
  worker.send({ type: 'publish', room: 'sports', text: 'goal! (from the worker)' })
  await fromWorker('published')
  got.push(await alice.next(), await bob.next(), await carol.next())

  for (const m of [alice, bob, carol]) m.ws.close()
  worker.send({ type: 'stop' })
  await once(worker, 'exit')
  await server.stop({ graceful: false })

  const want = [
    'hello from main',
    'hello from main',
    'news from the worker',
    'news from the worker',
    'goal! (from the worker)',
  ]
  if (size !== 2 || got.join('|') !== want.join('|')) throw new Error(`unexpected: size ${size}, got ${got}`)
  console.log('done: rooms spanned two processes through Redis')
}

// Hub fan-out: one publish to 10,000 subscribed connections, time until every receiver has it,
// with hypersock's Hub (framed once, queued in Rust), `ws` (a loop over the clients) and
// uWebSockets.js (`app.publish`); plus each server's memory for the same idle connections.
// The connections are held by the Rust load generator ws-fanout. Both sides raise their
// descriptor limit to the hard limit (`ulimit -n`) first.
import { bin, node, SECONDS, WARMUP } from '../lib/config.mjs'
import { run, withServer } from '../lib/proc.mjs'

/** Receivers per publish (`HUB_CONNECTIONS`, default 10,000). */
const CONNECTIONS = Number(process.env.HUB_CONNECTIONS ?? 10_000)
const ROUNDS = 20

/** Runs `command args` with the descriptor limit raised to the hard limit. */
function withFdLimit(command, args) {
  return ['bash', ['-c', 'ulimit -n "$(ulimit -Hn)" && exec "$0" "$@"', command, ...args]]
}

const SERVERS = [
  ['hypersock', ...node('servers/hypersock-fanout.mjs')],
  ['ws', ...node('servers/ws-fanout.mjs')],
  ['uWebSockets', ...node('servers/uws-fanout.mjs')],
]

/** Measures fan-out (deliveries/s at the median round) and idle memory for every server. */
export async function hubFanout(record) {
  for (const [subject, command, args] of SERVERS) {
    let result
    await record('hub-fanout-10k', subject, async () => {
      const [cmd, cmdArgs] = withFdLimit(command, args)
      result = await withServer(subject, cmd, cmdArgs, (port) => fanout(`ws://127.0.0.1:${port}/`))
      return {
        value: (result.connections / result.p50_ms) * 1000,
        detail: `p50 ${result.p50_ms.toFixed(2)} ms, min ${result.min_ms.toFixed(2)} ms to ${result.connections} receivers`,
      }
    })
    await record('hub-publish-js-thread', subject, async () => {
      if (!result) throw new Error('no fan-out run')
      // Lower is better: microseconds the event loop is blocked by one publish to 10k receivers.
      return { value: result.js_publish_us, detail: `${result.js_publish_us} µs of JS thread per publish` }
    })
    await record('idle-memory-10k', subject, async () => {
      if (!result) throw new Error('no fan-out run to read the memory from')
      const kib = result.bytes_per_connection / 1024
      return {
        value: kib,
        detail: `${kib.toFixed(1)} KiB RSS per idle connection (${(result.rss_loaded / 2 ** 20).toFixed(0)} MiB with ${result.connections})`,
      }
    })
  }
}

async function fanout(url) {
  const [cmd, args] = withFdLimit(bin('ws-fanout'), [
    '--url',
    url,
    '--connections',
    String(CONNECTIONS),
    '--rounds',
    String(ROUNDS),
  ])
  const out = await run(cmd, args, { timeoutMs: 300_000 })
  return JSON.parse(out.trim().split('\n').at(-1))
}

const ROOM_SERVERS = [
  ['hypersock', ...node('servers/hypersock-room.mjs')],
  ['ws', ...node('servers/ws-room.mjs')],
  ['uWebSockets', ...node('servers/uws-room.mjs')],
]

/**
 * A 100-member room chat: every member sends 32 B messages (4 in flight each) that the server
 * publishes to the whole room, sender included; deliveries/s received by the members (ws-load
 * --room: a member sends its next message when its own copy comes back).
 */
export async function hubRoomChat(record) {
  for (const [subject, command, args] of ROOM_SERVERS) {
    await record('hub-room-100', subject, () =>
      withServer(subject, command, args, async (port) => {
        const url = `ws://127.0.0.1:${port}/`
        await roomLoad(url, WARMUP)
        const rate = await roomLoad(url, SECONDS)
        return { value: rate, detail: `${Math.round(rate / 100)} messages/s published to 100 members` }
      }),
    )
  }
}

async function roomLoad(url, seconds) {
  const args = ['--url', url, '--room', '--connections', '100', '--pipeline', '4', '--size', '32']
  args.push('--duration-secs', String(seconds))
  const out = await run(bin('ws-load'), args, { timeoutMs: seconds * 1000 + 20_000 })
  return JSON.parse(out.trim().split('\n').at(-1)).rate
}

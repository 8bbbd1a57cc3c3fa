// WebSocket echo msgs/s: hypersock serve({ websocket }) vs the `ws` package, loaded by ws-load.
import { bin, node, SECONDS, WARMUP } from '../lib/config.mjs'
import { run, withServer } from '../lib/proc.mjs'

const SERVERS = [
  ['hypersock', ...node('servers/hypersock-ws.mjs')],
  ['ws', ...node('servers/ws-echo.mjs')],
]

/** 100 connections, 16 messages in flight on each. */
const RUNS = [
  { scenario: 'ws-echo-32', size: 32, binary: false },
  { scenario: 'ws-echo-16k', size: 16 * 1024, binary: true },
]

/** Measures every server for each message size; `record` as in http.mjs. */
export async function wsEcho(record) {
  for (const { scenario, size, binary } of RUNS) {
    for (const [subject, command, args] of SERVERS) {
      await record(scenario, subject, () =>
        withServer(subject, command, args, async (port) => {
          const url = `ws://127.0.0.1:${port}/`
          await wsLoad(url, size, binary, WARMUP)
          return wsLoad(url, size, binary, SECONDS)
        }),
      )
    }
  }
}

/** Runs the ws-load binary and returns the echoes per second it saw. */
async function wsLoad(url, size, binary, seconds) {
  const args = ['--url', url, '--connections', '100', '--pipeline', '16', '--size', String(size)]
  args.push('--duration-secs', String(seconds), ...(binary ? ['--binary'] : []))
  const out = await run(bin('ws-load'), args, { timeoutMs: seconds * 1000 + 20_000 })
  const { rate } = JSON.parse(out.trim().split('\n').at(-1))
  return rate
}

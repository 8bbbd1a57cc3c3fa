// HTTP hello-world req/s: hypersock serve() vs node:http vs hyper (pure Rust), loaded by wrk.
import { spawnSync } from 'node:child_process'
import { bin, node, SECONDS, WARMUP } from '../lib/config.mjs'
import { run, runVisible, withServer } from '../lib/proc.mjs'

const SERVERS = [
  ['hypersock', ...node('servers/hypersock-http.mjs')],
  ['node:http', ...node('servers/node-http.mjs')],
  ['hyper (pure Rust)', bin('hyper-hello'), ['--port', '0']],
]

/** Measures every server in turn; `record(scenario, subject, fn)` stores what `fn` returns. */
export async function httpHello(record) {
  for (const [subject, command, args] of SERVERS) {
    await record('http-hello', subject, () =>
      withServer(subject, command, args, async (port) => {
        const url = `http://127.0.0.1:${port}/`
        await wrk(url, WARMUP)
        return wrk(url, SECONDS)
      }),
    )
  }
}

/** Runs `wrk -t1 -c64` for `seconds` and returns its Requests/sec. */
async function wrk(url, seconds) {
  const out = await run('wrk', ['-t1', '-c64', `-d${seconds}s`, url], { timeoutMs: seconds * 1000 + 15_000 })
  const rate = /Requests\/sec:\s*([\d.]+)/.exec(out)
  if (!rate) throw new Error(`cannot find Requests/sec in the output of wrk:\n${out}`)
  const non2xx = /Non-2xx or 3xx responses:\s*(\d+)/.exec(out)
  if (non2xx) throw new Error(`${non2xx[1]} responses were not 2xx`)
  const errors = /Socket errors: (.*)/.exec(out)
  return { value: Number(rate[1]), detail: errors ? `wrk socket errors: ${errors[1]}` : undefined }
}

/** Makes sure `wrk` is on PATH, installing the Debian package if it is not. */
export async function ensureWrk() {
  const hasWrk = () => spawnSync('wrk', ['--version'], { stdio: 'ignore' }).error === undefined
  if (hasWrk()) return
  console.error('bench: wrk is not on PATH; installing it with apt-get')
  try {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
    await runVisible('apt-get', ['update'], { env })
    await runVisible('apt-get', ['install', '-y', 'wrk'], { env })
  } catch (error) {
    throw new Error(`wrk is needed for the HTTP benchmark and \`apt-get install -y wrk\` failed: ${error.message}`)
  }
  if (!hasWrk()) throw new Error('wrk is still not on PATH after `apt-get install -y wrk`')
}

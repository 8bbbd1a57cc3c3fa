// Client GET req/s: hypersock Client.fetch vs undici.request vs Node's global fetch, all against
// the hyper-hello server (the cheapest server, so the client is what is measured).
import { bin, node, SECONDS, WARMUP } from '../lib/config.mjs'
import { run, withServer } from '../lib/proc.mjs'

const CLIENTS = ['hypersock', 'undici.request', 'global fetch']
const CONCURRENCY = [1, 64]

/** Measures every client at each concurrency; `record` as in http.mjs. */
export async function clientGet(record) {
  await withServer('hyper-hello', bin('hyper-hello'), ['--port', '0'], async (port) => {
    for (const concurrency of CONCURRENCY) {
      for (const client of CLIENTS) {
        await record(`client-get-c${concurrency}`, client, () => clientLoad(client, port, concurrency))
      }
    }
  })
}

/** Runs clients/http-get.mjs in its own process and returns its requests per second. */
async function clientLoad(client, port, concurrency) {
  const [command, args] = node(
    'clients/http-get.mjs',
    `--client=${client}`,
    `--url=http://127.0.0.1:${port}/`,
    `--concurrency=${concurrency}`,
    `--seconds=${SECONDS}`,
    `--warmup=${WARMUP}`,
  )
  const out = await run(command, args, { timeoutMs: (SECONDS + WARMUP) * 1000 + 20_000 })
  const { rate } = JSON.parse(out.trim().split('\n').at(-1))
  return rate
}

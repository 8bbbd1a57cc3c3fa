// Autobahn|Testsuite client under test: runs every case of a `kosoku -m fuzzingserver` at
// ws://127.0.0.1:PORT with the hypersock WebSocket client (echoing every message), then asks the
// fuzzing server to write its reports.
//   node client.mjs URL CONCURRENCY default  `new WebSocket(url)`: the options a user gets
//   node client.mjs URL CONCURRENCY tuned    every message compressed, client_no_context_takeover
//                                            offered, a 64 MiB message limit
import { WebSocket } from '../../dist/index.js'

const base = process.argv[2] ?? 'ws://127.0.0.1:9001'
const concurrency = Number(process.argv[3] ?? 4)
const mode = process.argv[4] ?? 'tuned'
if (mode !== 'default' && mode !== 'tuned') throw new Error(`mode must be 'default' or 'tuned', not '${mode}'`)
const agent = 'hypersock'
// Offering client_no_context_takeover lets the suite's servers accept the offers of cases
// 13.2, 13.5 and 13.6, which require it; by default the client offers context takeover.
const options =
  mode === 'tuned' ? { maxMessageSize: 64 * 1024 * 1024, compression: { clientNoContextTakeover: true, threshold: 0 } } : undefined

function run(url, echo) {
  return new Promise((resolve) => {
    const ws = options ? new WebSocket(url, [], options) : new WebSocket(url)
    ws.binaryType = 'nodebuffer'
    let last
    ws.onmessage = (e) => {
      last = e.data
      if (echo) {
        try {
          ws.send(e.data)
        } catch {}
      }
    }
    ws.onerror = () => {}
    ws.onclose = () => resolve(last)
  })
}

const count = Number(await run(`${base}/getCaseCount`, false))
let next = 1
async function worker() {
  while (next <= count) {
    const i = next++
    await run(`${base}/runCase?case=${i}&agent=${agent}`, true)
  }
}
await Promise.all(Array.from({ length: concurrency }, worker))
await run(`${base}/updateReports?agent=${agent}`, false)
console.log(`ran ${count} cases`)

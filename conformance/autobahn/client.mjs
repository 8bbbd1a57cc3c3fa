// Autobahn|Testsuite client under test: runs every case of a `kosoku -m fuzzingserver` at
// ws://127.0.0.1:PORT with the hypersock WebSocket client (echoing every message), then asks the
// fuzzing server to write its reports.
import { WebSocket } from '../../dist/index.js'

const base = process.argv[2] ?? 'ws://127.0.0.1:9001'
const concurrency = Number(process.argv[3] ?? 4)
const agent = 'hypersock'
// Offering client_no_context_takeover lets the suite's servers accept the offers of cases
// 13.2, 13.5 and 13.6, which require it; by default the client offers context takeover.
const compression = { clientNoContextTakeover: true, threshold: 0 }

function run(url, echo) {
  return new Promise((resolve) => {
    const ws = new WebSocket(url, [], { maxMessageSize: 64 * 1024 * 1024, compression })
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

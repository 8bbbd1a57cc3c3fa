// `npm run bench`: runs each scenario against hypersock and its peers side by side, prints a
// table of ratios (hypersock / peer) and writes bench/.out/results.json.
// Env: BENCH_SECONDS (default 5) is the length of each measurement; 1 makes a quick smoke run.
// BENCH_ROUNDS (default 3): the HTTP scenarios measure every server that many times, in turns,
// and keep the median.
// BENCH_ONLY=wsEcho,hubFanout runs only those scenarios (also hubRoomChat, httpHello, ...); BENCH_IDLE_CONNECTIONS (default 10000).
// Only loopback addresses are used. Progress goes to stderr, the table to stdout.
// `npm run bench -- --compare old.json` also prints every measurement of this run beside the
// same one in old.json (each run keeps a copy, bench/.out/results-<start time>.json);
// `npm run bench -- --compare old.json new.json` compares two kept runs without running anything.
import { mkdirSync } from 'node:fs'
import { checkBuilt, OUT_DIR, ROOT, SECONDS } from './lib/config.mjs'
import { killAll, runVisible } from './lib/proc.mjs'
import { compare, compareRuns, readResults, table, writeJson } from './lib/report.mjs'
import { clientBodiesAndTls, clientGet } from './scenarios/client.mjs'
import { ensureWrk, http2Hello, httpFiles, httpHello, httpIdle, httpJsonEcho, httpRoutes } from './scenarios/http.mjs'
import { hubFanout, hubRedisLatency, hubRoomChat, hubScale } from './scenarios/hub.mjs'
import { wsEcho, wsHttp2, wsIdle, wsScale, wsTuning } from './scenarios/ws.mjs'

// No child outlives the harness, however it ends.
process.on('exit', killAll)
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.on(signal, () => {
    console.error(`bench: ${signal}, stopping`)
    killAll()
    process.exit(130)
  })
}

const measurements = []
let only

/**
 * Runs one measurement; a failure is recorded (and reported) without stopping the others.
 * A `provisional` one (a single round of several) is only printed; its scenario records the result.
 */
async function record(scenario, subject, measure, { provisional = false } = {}) {
  console.error(`bench: ${scenario} / ${subject} ...`)
  try {
    const result = await measure()
    const { value, detail } = typeof result === 'number' ? { value: result } : result
    if (!provisional) measurements.push({ scenario, subject, value, ...(detail && { detail }) })
    console.error(`bench: ${scenario} / ${subject}: ${Math.round(value)}${detail ? ` (${detail})` : ''}`)
  } catch (error) {
    if (!provisional) measurements.push({ scenario, subject, value: null, error: error.message })
    console.error(`bench: ${scenario} / ${subject} FAILED: ${error.message}`)
  }
}

/** The files after `--compare` (one: compare this run with it; two: compare them, run nothing). */
function compareArgs(argv) {
  const at = argv.indexOf('--compare')
  const unknown = argv.filter((a, i) => a.startsWith('-') && i !== at)
  if (unknown.length)
    throw new Error(`unknown argument ${unknown[0]} (the one argument is --compare old.json [new.json])`)
  if (at === -1) {
    if (argv.length) throw new Error(`unexpected argument ${argv[0]}`)
    return []
  }
  const files = argv.slice(at + 1)
  if (files.length < 1 || files.length > 2 || at !== 0) throw new Error('usage: --compare old.json [new.json]')
  return files
}

async function main() {
  const startedAt = new Date().toISOString()
  const compareWith = compareArgs(process.argv.slice(2))
  if (compareWith.length === 2) {
    console.log(compareRuns(readResults(compareWith[0]), readResults(compareWith[1])))
    return
  }
  const before = compareWith.length ? readResults(compareWith[0]) : undefined
  checkBuilt()
  mkdirSync(OUT_DIR, { recursive: true })
  // BENCH_ONLY=wsEcho,hubFanout (a comma-separated list of scenario names) runs a subset.
  only = process.env.BENCH_ONLY?.split(',').filter(Boolean)
  await ensureWrk()
  console.error('bench: building the Rust load generator and ceiling (cargo build --release -p hypersock-bench)')
  await runVisible('cargo', ['build', '--release', '-p', 'hypersock-bench'], { cwd: ROOT })
  console.error(`bench: ${SECONDS} s per measurement, after 1 s of warm-up`)

  const scenarios = [
    httpHello,
    httpJsonEcho,
    httpRoutes,
    httpFiles,
    http2Hello,
    wsEcho,
    wsTuning,
    wsIdle,
    wsScale,
    httpIdle,
    wsHttp2,
    clientGet,
    clientBodiesAndTls,
    hubFanout,
    hubScale,
    hubRoomChat,
    hubRedisLatency,
  ]
  for (const scenario of scenarios.filter((s) => !only || only.includes(s.name))) {
    try {
      await scenario(record)
    } catch (error) {
      console.error(`bench: ${scenario.name} FAILED: ${error.message}`)
      measurements.push({ scenario: scenario.name, subject: null, value: null, error: error.message })
    }
  }

  const rows = compare(measurements).filter((r) => !only || r.hypersock != null || r.peerValue != null)
  console.log(table(rows))
  const [file, kept] = writeJson(measurements, rows, startedAt)
  console.error(`bench: results written to ${file} (kept as ${kept})`)
  if (before) {
    const after = readResults(file)
    console.log(`\n${compareRuns(before, after)}`)
  }
  if (measurements.some((m) => m.error)) {
    console.error('bench: some measurements failed, see above')
    process.exitCode = 1
  }
}

try {
  await main()
} catch (error) {
  console.error(`bench: ${error.message}`)
  process.exitCode = 1
} finally {
  killAll()
}

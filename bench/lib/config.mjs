// Settings and paths shared by the benchmark scenarios.
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

/** The bench/ directory and the repository root. */
export const BENCH = dirname(dirname(fileURLToPath(import.meta.url)))
export const ROOT = dirname(BENCH)

/** Seconds each measurement runs (`BENCH_SECONDS`, default 5; whole seconds for wrk). */
export const SECONDS = readSeconds(process.env.BENCH_SECONDS)

/** Rounds of the HTTP scenarios (`BENCH_ROUNDS`, default 3); each server's median is kept. */
export const ROUNDS = readRounds(process.env.BENCH_ROUNDS)

/** Seconds of warm-up load before each measurement (JIT, connection pools), not counted. */
export const WARMUP = 1

/** Where the results JSON goes (gitignored). */
export const OUT_DIR = join(BENCH, '.out')

function readRounds(raw) {
  if (raw === undefined || raw === '') return 3
  const rounds = Number(raw)
  if (!Number.isInteger(rounds) || rounds < 1 || rounds > 20) {
    throw new Error(`BENCH_ROUNDS must be a whole number from 1 to 20, not ${JSON.stringify(raw)}`)
  }
  return rounds
}

function readSeconds(raw) {
  if (raw === undefined || raw === '') return 5
  const seconds = Number(raw)
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 600) {
    throw new Error(`BENCH_SECONDS must be a whole number of seconds from 1 to 600, not ${JSON.stringify(raw)}`)
  }
  return seconds
}

/** Path of a release binary of the hypersock-bench crate. */
export function bin(name) {
  return join(process.env.CARGO_TARGET_DIR ?? join(ROOT, 'target'), 'release', name)
}

/** `[command, args]` running a script of bench/ with this Node. */
export function node(script, ...args) {
  return [process.execPath, [join(BENCH, script), ...args]]
}

/** Fails early with a clear message when the package has not been built. */
export function checkBuilt() {
  if (!existsSync(join(ROOT, 'dist', 'index.js'))) {
    throw new Error('dist/index.js is missing: build the package first with `npm run build`')
  }
}

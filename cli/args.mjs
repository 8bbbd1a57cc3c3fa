// Argument parsing shared by the commands: node:util parseArgs with a did-you-mean for unknown
// options, and the exit codes of the CLI.
import { parseArgs } from 'node:util'

/** Exit codes: 0 ok, 1 HTTP status >= 400 with --check-status, 2 usage, 3 network or TLS error. */
export const EXIT = { OK: 0, HTTP: 1, USAGE: 2, NETWORK: 3 }

/** A usage error: printed with the command's help hint, exit code 2. */
export class UsageError extends Error {}

function distance(a, b) {
  const row = Array.from({ length: b.length + 1 }, (_, i) => i)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const cur = row[j]
      row[j] = Math.min(cur + 1, row[j - 1] + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = cur
    }
  }
  return row[b.length]
}

/** Parses `argv` by `options` (parseArgs format); unknown options throw a UsageError with a suggestion. */
export function parse(argv, options) {
  try {
    return parseArgs({ args: argv, options, allowPositionals: true, strict: true })
  } catch (err) {
    const unknown = /Unknown option '(-{1,2}[^']+)'/.exec(err.message)?.[1]
    if (unknown) {
      const name = unknown.replace(/^-+/, '')
      const best = Object.keys(options)
        .map((o) => [o, distance(name, o)])
        .sort((x, y) => x[1] - y[1])[0]
      const hint = best && best[1] <= Math.max(2, Math.floor(name.length / 3)) ? ` (did you mean --${best[0]}?)` : ''
      throw new UsageError(`unknown option ${unknown}${hint}`)
    }
    throw new UsageError(err.message)
  }
}

/** A non-negative integer option, or a UsageError. */
export function integer(name, value, min = 0) {
  if (value === undefined) return undefined
  const n = Number(value)
  if (!Number.isSafeInteger(n) || n < min) throw new UsageError(`--${name} must be an integer >= ${min}, not ${value}`)
  return n
}

/** Colors for a TTY, nothing when piped or NO_COLOR is set. */
export function palette(stream) {
  const on = stream.isTTY && !process.env.NO_COLOR
  const c = (code) => (s) => (on ? `\x1b[${code}m${s}\x1b[0m` : String(s))
  return { on, bold: c(1), dim: c(2), red: c(31), green: c(32), yellow: c(33), blue: c(34), cyan: c(36) }
}

/** Bytes for people: 1.5 MiB. */
export function bytes(n) {
  const units = ['B', 'KiB', 'MiB', 'GiB', 'TiB']
  let i = 0
  while (n >= 1024 && i < units.length - 1) {
    n /= 1024
    i++
  }
  return `${i === 0 ? n : n.toFixed(1)} ${units[i]}`
}

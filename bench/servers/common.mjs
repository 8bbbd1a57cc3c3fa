// Shared by the benchmark servers: each runs in its own process spawned by bench/run.mjs.

/** The hello-world body every HTTP server answers with. */
export const HELLO = 'Hello, World!'

/**
 * Tells the harness the server is up (`LISTENING <port>` on stdout) and exits when the harness
 * closes our stdin, so a server never outlives it.
 */
export function announce(port) {
  process.stdout.write(`LISTENING ${port}\n`)
  process.stdin.on('end', () => process.exit(0))
  process.stdin.resume()
}

/** The median of a list of numbers, rounded (0 when empty): the fan-out servers report it. */
export function median(values) {
  if (values.length === 0) return 0
  const sorted = [...values].sort((a, b) => a - b)
  return Math.round(sorted[Math.floor(sorted.length / 2)])
}

/** Microseconds of CPU (user + system, every thread) the process has used: the fan-out servers' `cpu` answer. */
export function cpuMicros() {
  const { user, system } = process.cpuUsage()
  return user + system
}

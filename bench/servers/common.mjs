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

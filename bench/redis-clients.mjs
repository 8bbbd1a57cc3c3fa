// `npm run bench:redis-clients`: the Redis adapter's own RESP2 code (crates/core/src/hub/resp.rs,
// compiled into bench/redis-clients) beside redis-rs (the `redis` crate, multiplexed async
// connection and async pub/sub) on the adapter's work, against one redis-server on loopback
// without persistence: PUBLISH round trips one at a time, a message from a publishing to a
// subscribing connection, and PUBLISH in pipelined batches of 512. Each client runs twice,
// alternating; the table shows the second (warm) run. About half a minute after the build.
// Env: REDIS_CLIENT_ROUNDS (20000).
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { freePort, killAll } from './lib/proc.mjs'
import { startRedis } from './lib/redis.mjs'

process.on('exit', killAll)
const manifest = fileURLToPath(new URL('./redis-clients/Cargo.toml', import.meta.url))
execFileSync('cargo', ['build', '--release', '--quiet', '--manifest-path', manifest], { stdio: 'inherit' })
const binary = fileURLToPath(new URL('./redis-clients/target/release/redis-clients-bench', import.meta.url))

const dir = mkdtempSync(join(tmpdir(), 'hypersock-redis-clients-'))
const port = await freePort()
await startRedis(port, dir, ['--appendonly', 'no'])
const rounds = process.env.REDIS_CLIENT_ROUNDS ?? '20000'
const lines = execFileSync(binary, [String(port), rounds])
  .toString()
  .trim()
  .split('\n')
  .map((l) => JSON.parse(l))
rmSync(dir, { recursive: true, force: true })

// The last result of each (measurement, client): the warm run.
const last = new Map(lines.map((l) => [`${l.what}/${l.client}`, l]))
const get = (what, client) => last.get(`${what}/${client}`)
const fmt = (n) => Math.round(n).toLocaleString('en-US')
console.log('| measurement | hypersock (resp.rs) | redis-rs | redis-rs / hypersock |')
console.log('| --- | ---: | ---: | ---: |')
for (const what of ['publish-round-trip', 'publish-to-subscriber']) {
  for (const q of ['p50_us', 'p99_us']) {
    const [a, b] = [get(what, 'hypersock')[q], get(what, 'redis-rs')[q]]
    console.log(
      `| ${what} ${q.replace('_us', '')}, µs (lower is better) | ${a.toFixed(1)} | ${b.toFixed(1)} | ${(b / a).toFixed(2)}x |`,
    )
  }
}
const [a, b] = [get('publish-pipelined', 'hypersock').per_s, get('publish-pipelined', 'redis-rs').per_s]
console.log(`| publish-pipelined (batches of 512), messages/s | ${fmt(a)} | ${fmt(b)} | ${(b / a).toFixed(2)}x |`)

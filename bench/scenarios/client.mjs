// Client scenarios: hypersock Client.fetch vs undici.request vs Node's global fetch, each client in
// its own process, in the same run.
// - small GET req/s at concurrency 1 and 64 against the hyper-hello server (the cheapest server, so
//   the client is what is measured), also with each kind of hook set to a function doing nothing;
// - 100 MiB body MB/s (body streamed and discarded), HTTPS small GET req/s (c64) and HTTP/2
//   multiplexed small GET req/s (c64 over TLS; global fetch has no HTTP/2 and stays on 1.1)
//   against node peers (bench/servers/client-peer.mjs) with a certificate made at bench time.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { bin, node, OUT_DIR, ROOT, SECONDS, WARMUP } from '../lib/config.mjs'
import { run, withServer } from '../lib/proc.mjs'

const CLIENTS = ['hypersock', 'undici.request', 'global fetch']
const CONCURRENCY = [1, 64]
/** The hypersock client with hooks that do nothing: what each kind of hook costs per request. */
const HOOKED = [
  'hypersock +beforeRequest',
  'hypersock +afterResponse',
  'hypersock +beforeRetry+beforeRedirect',
  'hypersock +compose',
]

/** Measures every client at each concurrency; `record` as in http.mjs. */
export async function clientGet(record) {
  await withServer('hyper-hello', bin('hyper-hello'), ['--port', '0'], async (port) => {
    for (const concurrency of CONCURRENCY) {
      for (const client of [...CLIENTS, ...HOOKED]) {
        await record(`client-get-c${concurrency}`, client, () =>
          clientLoad(client, `http://127.0.0.1:${port}/`, concurrency),
        )
      }
    }
  })
}

/** Writes a CA and a server certificate for 127.0.0.1 (hypersock/testing) and returns their paths. */
async function certificates() {
  const { generateCertificate } = await import(join(ROOT, 'dist', 'testing.js'))
  const ca = generateCertificate({ isCa: true, commonName: 'hypersock bench CA' })
  const leaf = generateCertificate({ ca })
  const caFile = join(OUT_DIR, 'bench-ca.pem')
  const certFile = join(OUT_DIR, 'bench-cert.json')
  writeFileSync(caFile, ca.cert)
  writeFileSync(certFile, JSON.stringify(leaf))
  return { caFile, certFile }
}

/** 100 MiB body MB/s, HTTPS small GET req/s and HTTP/2 multiplexed req/s. */
export async function clientBodiesAndTls(record) {
  const { caFile, certFile } = await certificates()
  const peer = (mode) => node('servers/client-peer.mjs', `--mode=${mode}`, `--cert=${certFile}`)
  const [command, httpArgs] = peer('http')
  await withServer('client-peer http', command, httpArgs, async (port) => {
    for (const client of CLIENTS) {
      await record('client-body-100mb', client, () =>
        clientLoad(client, `http://127.0.0.1:${port}/100mb`, 1, ['--bytes']),
      )
    }
  })
  await withServer('client-peer https', command, peer('https')[1], async (port) => {
    for (const client of CLIENTS) {
      await record('client-https-c64', client, () =>
        clientLoad(client, `https://127.0.0.1:${port}/`, 64, [`--ca=${caFile}`], caFile),
      )
    }
  })
  await withServer('client-peer h2', command, peer('h2')[1], async (port) => {
    for (const client of CLIENTS) {
      await record('client-h2-c64', client, () =>
        clientLoad(client, `https://127.0.0.1:${port}/`, 64, [`--ca=${caFile}`, '--h2'], caFile),
      )
    }
  })
}

/** Runs clients/http-get.mjs in its own process and returns its rate. */
async function clientLoad(client, url, concurrency, extra = [], caFile = undefined) {
  const [command, args] = node(
    'clients/http-get.mjs',
    `--client=${client}`,
    `--url=${url}`,
    `--concurrency=${concurrency}`,
    `--seconds=${SECONDS}`,
    `--warmup=${WARMUP}`,
    ...extra,
  )
  const env = caFile ? { ...process.env, NODE_EXTRA_CA_CERTS: caFile } : process.env
  const out = await run(command, args, { timeoutMs: (SECONDS + WARMUP) * 1000 + 60_000, env })
  const { rate } = JSON.parse(out.trim().split('\n').at(-1))
  return rate
}

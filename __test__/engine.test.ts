// Engine settings (`configure`): run in a process of their own, since they are process-wide.
import { execFile } from 'node:child_process'
import { fileURLToPath } from 'node:url'
import { configure } from 'hypersock'
import { describe, expect, it } from 'vitest'
import { caught } from './helpers.js'

const fixture = fileURLToPath(new URL('./fixtures/engine-node.mjs', import.meta.url))

function run(env: Record<string, string> = {}): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) =>
    execFile(process.execPath, [fixture], { env: { ...process.env, ...env } }, (err, stdout, stderr) =>
      err ? reject(new Error(`${err.message}\n${stderr}`)) : resolve(JSON.parse(stdout)),
    ),
  )
}

describe('configure', () => {
  it('sets the I/O threads before anything starts and the read size at any time', async () => {
    const out = await run({ HYPERSOCK_WORKER_THREADS: '1' })
    expect(out.initial).toEqual({ workerThreads: 1, readBufferSize: 65536 })
    expect(out.initialThreads).toBe(1)
    expect(out.configured).toEqual({ workerThreads: 3, readBufferSize: 8192 })
    // The runtime was replaced: three I/O threads now, and it serves HTTP and WebSockets.
    expect(out.threads).toBe(3)
    expect(out.typo).toMatch(/readBufferSize/)
    expect(out.http).toBe('hello')
    expect(out.echo).toBe(true)
    // Once the engine runs, the thread count is fixed.
    expect(out.busy).toBe('ERR_INVALID_STATE')
    expect(out.after).toEqual({ workerThreads: 3, readBufferSize: 8192 })
  })

  it('refuses values out of range', async () => {
    expect((await caught(() => configure({ workerThreads: 0 }))).code).toBe('ERR_INVALID_ARG_VALUE')
    expect((await caught(() => configure({ readBufferSize: 1000 }))).message).toMatch(/4096 to 16777216/)
    expect((await caught(() => configure({ workerThreads: 2.5 }))).code).toBe('ERR_INVALID_ARG_VALUE')
    expect((await caught(() => configure(null as never))).code).toBe('ERR_INVALID_ARG_VALUE')
  })
})

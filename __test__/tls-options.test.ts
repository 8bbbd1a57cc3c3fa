// One rule for TLS options wherever they are given (client, WebSocket, server, SNI entries, the
// Redis adapter): known keys only, with a did-you-mean, and values of the right type.
import { Client, type HypersockError, RedisAdapter, serve, WebSocket } from 'hypersock'
import { describe, expect, it } from 'vitest'
import { caught } from './helpers.js'

describe('one rule for TLS options', () => {
  it('refuses a non-boolean rejectUnauthorized and unknown keys everywhere', async () => {
    const bad = { rejectUnauthorized: 0 } as unknown as { rejectUnauthorized: boolean }
    for (const make of [() => new Client({ tls: bad }), () => new WebSocket('wss://127.0.0.1:1/', [], { tls: bad })]) {
      const err = await caught(make)
      expect(err.code).toBe('ERR_INVALID_ARG_VALUE')
      expect(err.message).toMatch(/tls.rejectUnauthorized must be true or false/)
    }
    const typo = { rejectUnauthorised: false } as unknown as { rejectUnauthorized: boolean }
    for (const make of [
      () => new Client({ tls: typo }),
      () => new WebSocket('wss://127.0.0.1:1/', [], { tls: typo }),
    ]) {
      let err: HypersockError | undefined
      try {
        make()
      } catch (e) {
        err = e as HypersockError
      }
      expect(err?.code).toBe('ERR_INVALID_ARG_VALUE')
      expect(err?.message).toMatch(/did you mean tls.rejectUnauthorized/)
    }
    const typoServe = await caught(() =>
      serve({ port: 0, tls: { cert: 'x', key: 'y', minVerison: 'TLSv1.3' } as never, fetch: () => 'x' }),
    )
    expect(typoServe.code).toBe('ERR_INVALID_ARG_VALUE')
    expect(typoServe.message).toMatch(/did you mean tls.minVersion/)
    const sniServe = await caught(() =>
      serve({
        port: 0,
        tls: { cert: 'x', key: 'y', sni: [{ serverName: 'a', cert: 'x', key: 'y', requireClientCert: 1 }] } as never,
        fetch: () => 'x',
      }),
    )
    expect(sniServe.code).toBe('ERR_INVALID_ARG_VALUE')
    expect(sniServe.message).toMatch(/tls.sni\[0\].requireClientCert is not a TLS option/)
    // Checked when the adapter is made, not later when a server binds it.
    const adapter = await caught(() => new RedisAdapter({ url: 'rediss://127.0.0.1:1', tls: bad }))
    expect(adapter.code).toBe('ERR_INVALID_ARG_VALUE')
    expect(adapter.message).toMatch(/tls.rejectUnauthorized must be true or false/)
  })
})

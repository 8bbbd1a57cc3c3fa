// wss:// with the hypersock client against a TLS WebSocket server (node:https + ws) using a
// certificate made at test time: verified with the CA given, refused without it.
import { execFileSync } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, readFileSync } from 'node:fs'
import https from 'node:https'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type CloseEvent, type ErrorEvent, type HypersockError, WebSocket } from 'hypersock'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { WebSocketServer } from 'ws'

let server: https.Server
let port = 0
let cert = ''

beforeAll(async () => {
  const dir = mkdtempSync(join(tmpdir(), 'hypersock-wss-'))
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-addext',
      'basicConstraints=critical,CA:FALSE',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ],
    { stdio: 'ignore' },
  )
  cert = readFileSync(join(dir, 'cert.pem'), 'utf8')
  server = https.createServer({ cert, key: readFileSync(join(dir, 'key.pem')) })
  const wss = new WebSocketServer({ server, perMessageDeflate: true })
  wss.on('connection', (sock) => sock.on('message', (d, isBinary) => sock.send(d, { binary: isBinary })))
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  port = (server.address() as AddressInfo).port
})

afterAll(() => {
  server?.close()
})

describe('wss:// client', () => {
  it('connects with the CA given, echoes with compression, and closes cleanly', async () => {
    const ws = new WebSocket(`wss://localhost:${port}/`, [], { tls: { ca: cert } })
    await once(ws, 'open')
    expect(ws.extensions).toContain('permessage-deflate')
    const big = 'secure '.repeat(5000)
    const got = new Promise((r) => ws.addEventListener('message', (e) => r((e as MessageEvent).data), { once: true }))
    ws.send(big)
    expect(await got).toBe(big)
    const closed = new Promise<CloseEvent>((r) => ws.addEventListener('close', (e) => r(e as CloseEvent)))
    ws.close(1000, 'bye')
    const ev = await closed
    expect([ev.code, ev.wasClean]).toEqual([1000, true])
  })

  it('refuses an unknown certificate unless rejectUnauthorized is false', async () => {
    const ws = new WebSocket(`wss://localhost:${port}/`)
    const err = await new Promise<ErrorEvent>((r) => ws.addEventListener('error', (e) => r(e as ErrorEvent)))
    expect((err.error as HypersockError).code).toMatch(/^ERR_TLS_/)
    const insecure = new WebSocket(`wss://127.0.0.1:${port}/`, [], { tls: { rejectUnauthorized: false } })
    await once(insecure, 'open')
    insecure.close()
  })
})

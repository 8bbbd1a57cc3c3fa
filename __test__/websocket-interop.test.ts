// Interop with real peers: Python `websockets` (Debian python3-websockets) both directions, and
// headless Chromium connecting to the hypersock server with permessage-deflate.
import { type ChildProcessWithoutNullStreams, execFile, spawn } from 'node:child_process'
import { once } from 'node:events'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { type CloseEvent, type Server, serve, WebSocket } from 'hypersock'
import { afterEach, describe, expect, it } from 'vitest'
import { ECHOED, echoScript, launchChromium } from './browser.js'
import { deferred } from './helpers.js'

const peers = fileURLToPath(new URL('./peers/', import.meta.url))
const python = '/usr/bin/python3'

const servers: Server[] = []
afterEach(async () => {
  await Promise.all(servers.splice(0).map((s) => s.stop({ graceful: false })))
})

async function echoServer() {
  const closes: Array<[number, string]> = []
  const server = await serve({
    fetch: () => new Response('<!doctype html><title>hypersock</title>', { headers: { 'content-type': 'text/html' } }),
    websocket: {
      compression: true,
      message: (ws, data) => ws.send(data),
      close: (_ws, code, reason) => closes.push([code, reason]),
    },
  })
  servers.push(server)
  return { server, closes }
}

describe('interop with Python websockets', () => {
  it('python client -> hypersock server, with and without compression', async () => {
    const { server, closes } = await echoServer()
    const out = await new Promise<string>((resolve, reject) =>
      execFile(python, [join(peers, 'py_ws_client.py'), `ws://127.0.0.1:${server.port}/`], (err, stdout) =>
        err ? reject(err) : resolve(stdout),
      ),
    )
    const got = JSON.parse(out)
    for (const mode of ['deflate', 'None']) {
      expect(got[mode]).toMatchObject({ text: 'hello', binary: [0, 1, 255], big: true, close: 4000 })
    }
    expect(got.deflate.extensions).toContain('permessage-deflate')
    expect(got.None.extensions).toBe('')
    while (closes.length < 2) await new Promise((r) => setTimeout(r, 10))
    expect(closes).toEqual([
      [4000, 'py done'],
      [4000, 'py done'],
    ])
  })

  it('hypersock client -> python server, with and without compression', async () => {
    const py: ChildProcessWithoutNullStreams = spawn(python, [join(peers, 'py_ws_server.py')])
    try {
      const [line] = (await once(py.stdout, 'data')) as [Buffer]
      const port = Number(String(line).trim())
      for (const compression of [true, false]) {
        const ws = new WebSocket(`ws://127.0.0.1:${port}/`, [], { compression })
        ws.binaryType = 'nodebuffer'
        await once(ws, 'open')
        expect(ws.extensions.includes('permessage-deflate')).toBe(compression)
        const next = () =>
          new Promise((r) => ws.addEventListener('message', (e) => r((e as MessageEvent).data), { once: true }))
        const big = 'y'.repeat(200_000)
        for (const msg of ['hi', big]) {
          const p = next()
          ws.send(msg)
          expect(await p).toBe(msg)
        }
        const p = next()
        ws.send(Buffer.from([9, 8, 7]))
        expect([...((await p) as Buffer)]).toEqual([9, 8, 7])
        const closed = new Promise<CloseEvent>((r) => ws.addEventListener('close', (e) => r(e as CloseEvent)))
        ws.send('close me')
        const ev = await closed
        expect([ev.code, ev.reason, ev.wasClean]).toEqual([4001, 'as asked', true])
      }
    } finally {
      py.stdin.end()
      py.kill()
    }
  })
})

describe('interop with headless Chromium', () => {
  it('a browser page talks to the hypersock server over WebSocket with permessage-deflate', async () => {
    const { server, closes } = await echoServer()
    const { browser, close } = await launchChromium()
    try {
      const page = await browser.newPage()
      await page.goto(server.url.href)
      const result = await page.evaluate(echoScript(server.url.href.replace('http:', 'ws:'), 'browser '))
      expect(result).toEqual({ ...ECHOED, extensions: expect.stringContaining('permessage-deflate') })
      const closed = deferred<void>()
      const wait = () => (closes.length ? closed.resolve() : setTimeout(wait, 10))
      wait()
      await closed.promise
      expect(closes).toEqual([[4002, 'tab done']])
    } finally {
      await close()
    }
  })
})

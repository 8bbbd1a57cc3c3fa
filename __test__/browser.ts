// Headless Chromium for the interop tests: a fresh profile, and the echo exchange a page runs
// against a WebSocket echo server.
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { type BrowserContext, chromium } from 'playwright-core'

/** Launches Chromium (Debian's, installed by .ci/run) with an empty profile; `close()` removes it. */
export async function launchChromium(options: { ignoreHTTPSErrors?: boolean } = {}): Promise<{
  browser: BrowserContext
  close: () => Promise<void>
}> {
  const profile = mkdtempSync(join(tmpdir(), 'hypersock-chromium-'))
  const browser = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    headless: true,
    ...options,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
  })
  return {
    browser,
    close: async () => {
      await browser.close()
      rmSync(profile, { recursive: true, force: true })
    },
  }
}

/**
 * Plain JavaScript for `page.evaluate`, kept as text so the test's imports do not leak in: opens a
 * WebSocket to `wsUrl`, echoes a short text, a long one (made of `word`) and binary, then closes
 * with 4002 'tab done'.
 */
export function echoScript(wsUrl: string, word: string): string {
  return `(async (wsUrl) => {
    const ws = new WebSocket(wsUrl)
    ws.binaryType = 'arraybuffer'
    await new Promise((r, j) => { ws.onopen = r; ws.onerror = j })
    const recv = () => new Promise((r) => { ws.onmessage = (e) => r(e.data) })
    const big = ${JSON.stringify(word)}.repeat(10000)
    ws.send('hello')
    const a = await recv()
    ws.send(big)
    const b = await recv()
    ws.send(new Uint8Array([1, 2, 250]))
    const c = Array.from(new Uint8Array(await recv()))
    const closed = new Promise((r) => { ws.onclose = (e) => r({ code: e.code, reason: e.reason, wasClean: e.wasClean }) })
    ws.close(4002, 'tab done')
    return { a, big: b === big, c, extensions: ws.extensions, close: await closed }
  })(${JSON.stringify(wsUrl)})`
}

/** What `echoScript` returns against an echo server with permessage-deflate. */
export const ECHOED = {
  a: 'hello',
  big: true,
  c: [1, 2, 250],
  close: { code: 4002, reason: 'tab done', wasClean: true },
}

// The installed package without its addon: the loader's error names the platform package it looked
// for and the fix that applies to how hypersock was installed.
import { execFile } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import { describe, expect, it } from 'vitest'

const run = promisify(execFile)
const root = join(__dirname, '..')

async function importError(dir: string): Promise<string> {
  const script = "import('hypersock').then(() => console.log('loaded'), (e) => console.log(e.code + ': ' + e.message))"
  const { stdout } = await run(process.execPath, ['-e', script], { cwd: dir })
  return stdout.trim()
}

describe('a missing native addon', () => {
  it('names the package to install, or the build command in a checkout', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'hypersock-noaddon-'))
    try {
      const pkg = join(dir, 'node_modules', 'hypersock')
      mkdirSync(pkg, { recursive: true })
      for (const f of ['dist', 'binding.cjs', 'binding.d.ts', 'package.json'])
        cpSync(join(root, f), join(pkg, f), { recursive: true })
      writeFileSync(join(dir, 'package.json'), '{ "name": "app", "private": true }')
      const arch = process.arch
      const installed = await importError(dir)
      expect(installed).toMatch(/^ERR_NATIVE_ADDON_MISSING: /)
      expect(installed).toContain(`hypersock-linux-${arch}-gnu`)
      expect(installed).toContain('npm install --include=optional')
      mkdirSync(join(pkg, 'crates', 'node'), { recursive: true })
      writeFileSync(join(pkg, 'crates', 'node', 'Cargo.toml'), '')
      const checkout = await importError(dir)
      expect(checkout).toContain('npm run build:native')
    } finally {
      rmSync(dir, { recursive: true, force: true })
    }
  })
})

// Loads the native addon through the loader that `napi build` generates (binding.cjs).
import { existsSync } from 'node:fs'
import { createRequire } from 'node:module'
import { fileURLToPath } from 'node:url'
import type * as Binding from '../binding.js'
import { HypersockError } from './errors.js'

export type { Binding }

/** The npm package that holds the prebuilt addon for this platform, as `napi` names it. */
export function platformPackage(): string {
  const { platform, arch } = process
  if (platform === 'linux') {
    const report = process.report?.getReport() as { header?: { glibcVersionRuntime?: string } } | undefined
    return `hypersock-linux-${arch}-${report?.header?.glibcVersionRuntime ? 'gnu' : 'musl'}`
  }
  if (platform === 'win32') return `hypersock-win32-${arch}-msvc`
  return `hypersock-${platform}-${arch}`
}

function load(): typeof Binding {
  const require = createRequire(import.meta.url)
  try {
    return require('../binding.cjs') as typeof Binding
  } catch (cause) {
    const pkg = platformPackage()
    // A checkout has the Rust sources beside dist/; an installed package does not.
    const checkout = existsSync(fileURLToPath(new URL('../crates/node/Cargo.toml', import.meta.url)))
    const fix = checkout
      ? 'This is a source checkout: build the addon with a Rust toolchain, `npm run build:native`.'
      : `npm installs it as the optional dependency ${pkg}: run \`npm install --include=optional\` ` +
        '(optional dependencies were left out, e.g. by --omit=optional or a lockfile made on another ' +
        `platform). If ${pkg} does not exist, no prebuilt addon is published for this platform yet.`
    throw new HypersockError(
      'ERR_NATIVE_ADDON_MISSING',
      `hypersock could not load its native addon for ${process.platform}-${process.arch} (package ${pkg}). ${fix}`,
      { cause },
    )
  }
}

export const native: typeof Binding = load()

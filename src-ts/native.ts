// Loads the native addon through the loader that `napi build` generates (binding.cjs).
import { createRequire } from 'node:module'
import type * as Binding from '../binding.js'
import { HypersockError } from './errors.js'

export type { Binding }

function load(): typeof Binding {
  const require = createRequire(import.meta.url)
  try {
    return require('../binding.cjs') as typeof Binding
  } catch (cause) {
    throw new HypersockError(
      'ERR_NATIVE_ADDON_MISSING',
      `hypersock could not load its native addon for ${process.platform}-${process.arch}. ` +
        'Install the package again so that npm fetches the prebuilt hypersock-<platform> package, ' +
        'or build it from source with a Rust toolchain: `npm run build:native`.',
      { cause },
    )
  }
}

export const native: typeof Binding = load()

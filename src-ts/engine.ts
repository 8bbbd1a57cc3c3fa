// Process-wide engine settings: the number of I/O threads and the socket read size.
import { fromNative, HypersockError, InvalidArgumentError } from './errors.js'
import { native } from './native.js'
import { checkOptions, optionKeys } from './validate.js'

/** Engine settings (see {@link configure}). */
export interface EngineSettings {
  /**
   * Rust I/O threads that run sockets, TLS, HTTP/2 and WebSocket framing. Default: one per core
   * but one, at least one (or `HYPERSOCK_WORKER_THREADS`). Changes only before anything starts.
   */
  workerThreads?: number
  /**
   * Bytes of one socket read of a WebSocket connection or a raw socket, 4 KiB to 16 MiB.
   * WebSocket connections read into one scratch buffer of this size per I/O thread (an idle
   * connection holds none) and read straight into their own buffer while a peer streams.
   * Default 64 KiB. Takes effect for the next read.
   */
  readBufferSize?: number
}

const KEYS = optionKeys<EngineSettings>({ workerThreads: true, readBufferSize: true })

function count(name: string, v: number | undefined, min: number, max: number): number | undefined {
  if (v === undefined) return undefined
  if (!Number.isSafeInteger(v) || v < min || v > max) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `${name} must be an integer from ${min} to ${max}`)
  }
  return v
}

/**
 * Changes engine settings and returns the ones in effect. `workerThreads` can change only before
 * the first server, request, WebSocket or socket starts (else `ERR_INVALID_STATE`), so call it
 * first thing:
 *
 * ```ts
 * import { configure, serve } from 'hypersock'
 * configure({ workerThreads: 2 })
 * await serve({ fetch: () => 'hi' })
 * ```
 */
export function configure(settings: EngineSettings): Required<EngineSettings> {
  if (settings === null || typeof settings !== 'object') {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'configure() takes an object of settings')
  }
  checkOptions('configure()', settings, KEYS)
  const config = {
    workerThreads: count('workerThreads', settings.workerThreads, 1, 1024),
    readBufferSize: count('readBufferSize', settings.readBufferSize, 4 << 10, 16 << 20),
  }
  try {
    return native.configureEngine(config)
  } catch (err) {
    const e = fromNative(err) as { code?: string; message?: string }
    // Not a WebSocket's state: the generic class, with the same code.
    if (e.code === 'ERR_INVALID_STATE') throw new HypersockError(e.code, e.message ?? '')
    throw e
  }
}

/** The engine settings in effect. */
export function engineSettings(): Required<EngineSettings> {
  return native.engineState()
}

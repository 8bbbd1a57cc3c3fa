// `serve({ routes })`: the route table as users write it, checked and turned into the engine's
// table. Matching happens in Rust; a route whose value is a fixed response, a file or a directory
// is answered there without waking JS, and a handler route reaches JS with its id and parameters.

import { InvalidArgumentError } from './errors.js'
import type { Binding } from './native.js'
import { fastParts } from './response.js'
import type { ServerRequest } from './server-request.js'
import { OCTET_HEADERS, type ResponseLike, TEXT_HEADERS } from './server-response.js'
import { checkOptions, nearest, optionKeys } from './validate.js'
import { flattenHeaders } from './wire/headers.js'

/** A handler of a route: the same shape as `fetch`. */
export type RouteHandler<Server> = (request: ServerRequest, server: Server) => ResponseLike | Promise<ResponseLike>

/** A value answered without JS: a `Response`, text or bytes (read once, when the table is built). */
export type StaticRoute = globalThis.Response | string | Uint8Array

/** What a route (or one method of it) does. */
export type RouteTarget<Server> = RouteHandler<Server> | StaticRoute | FileRoute

/**
 * The routes of {@link serve}, by pattern: `/about`, `/users/:id` (a `:name` segment captures
 * one segment), `/assets/*` (a final `*` captures the rest, as `params['*']`). A value answers
 * every method; an object of methods (`{ GET, POST }`) answers those and 405 (with `Allow`) the
 * others, `HEAD` following `GET`.
 */
export type Routes<Server> = Record<string, RouteTarget<Server> | Partial<Record<string, RouteTarget<Server>>>>

/** How a {@link file} or {@link dir} route serves files. */
export interface FileRouteOptions {
  /** Serve `x.br` or `x.gz` beside `x` to clients that accept them. Default true. */
  precompressed?: boolean
  /** The file served for a directory's path (`/docs/` → `/docs/index.html`); `false`: none. Default `index.html`. */
  index?: string | false
  /** `Cache-Control` value of every file. Default none. */
  cacheControl?: string
  /** Serve names starting with `.` (else 404). Default false. */
  dotfiles?: boolean
  /**
   * {@link dir} only: answer a directory without the index file with an HTML listing of its
   * entries (names escaped, directories first, dotfiles only with `dotfiles`). Default false (404).
   */
  listing?: boolean
}

const FILE_KEYS = optionKeys<FileRouteOptions>({
  precompressed: true,
  index: true,
  cacheControl: true,
  dotfiles: true,
  listing: true,
})

/** A file or directory served from disk by the engine; made by {@link file} and {@link dir}. */
export class FileRoute {
  /** @internal */
  readonly kind: 'file' | 'dir'
  /** The path as given. */
  readonly path: string
  /** @internal */
  readonly options: Binding.BindingFileOptions

  /** @internal */
  constructor(kind: 'file' | 'dir', path: string, options: FileRouteOptions) {
    if (typeof path !== 'string' || path === '') {
      throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `${kind}() needs a path`)
    }
    checkOptions(`${kind}()`, options, FILE_KEYS)
    if (options.index !== undefined && options.index !== false && typeof options.index !== 'string') {
      throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `${kind}(): index must be a file name or false`)
    }
    this.kind = kind
    this.path = path
    if (options.listing !== undefined && kind === 'file') {
      throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'file(): listing is an option of dir()')
    }
    this.options = {
      precompressed: options.precompressed,
      index: options.index === false ? '' : options.index,
      cacheControl: options.cacheControl,
      dotfiles: options.dotfiles,
      listing: options.listing,
    }
    Object.freeze(this)
  }
}

/**
 * One file as a route's response, streamed from disk by the engine: `Content-Type` by extension,
 * `ETag` and `Last-Modified` with 304, `Range` (206, 416), `HEAD`, and a precompressed `.br` or
 * `.gz` sibling when the client accepts it.
 *
 * ```ts
 * serve({ routes: { '/favicon.ico': file('./public/favicon.ico') } })
 * ```
 */
export function file(path: string, options: FileRouteOptions = {}): FileRoute {
  return new FileRoute('file', path, options)
}

/**
 * A directory served under a route ending in `/*`, as {@link file} serves one file. Paths that
 * would leave the directory (`..`, encoded slashes or dots, backslashes, NUL, symlinks pointing
 * outside) get 404, as do dotfiles unless `dotfiles` is set. No listings.
 *
 * ```ts
 * serve({ routes: { '/assets/*': dir('./public') } })
 * ```
 */
export function dir(path: string, options: FileRouteOptions = {}): FileRoute {
  return new FileRoute('dir', path, options)
}

const METHOD = /^[A-Z][A-Z0-9!#$%&'*+.^_`|~-]*$/
const COMMON_METHODS = ['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS']

/** The bytes, status and headers of a static route value. */
async function staticParts(value: StaticRoute): Promise<{ status: number; headers: string[]; body: Buffer }> {
  if (typeof value === 'string') return { status: 200, headers: [...TEXT_HEADERS], body: Buffer.from(value) }
  if (value instanceof Uint8Array) return { status: 200, headers: [...OCTET_HEADERS], body: Buffer.from(value) }
  const fast = fastParts(value)
  if (fast) {
    const body = fast.body === null ? Buffer.alloc(0) : Buffer.from(fast.body as string)
    return { status: fast.status, headers: fast.headers, body }
  }
  if (value.bodyUsed) throw new TypeError('a route Response whose body was read already')
  const body = Buffer.from(await value.clone().arrayBuffer())
  return { status: value.status, headers: flattenHeaders(value.headers), body }
}

function isStatic(value: unknown): value is StaticRoute {
  return typeof value === 'string' || value instanceof Uint8Array || value instanceof globalThis.Response
}

/**
 * The handlers of a server's routes by id. An id belongs to one pattern and method for the life
 * of the server, so a request matched just before `reload()` reaches the new handler of its
 * route (or the old one, when the route is gone).
 */
export class RouteHandlers<Server> {
  #ids = new Map<string, number>()
  #handlers: Array<RouteHandler<Server> | undefined> = []
  #patterns: string[] = []

  /** The handler and pattern of route `id`. */
  get(id: number): [RouteHandler<Server>, string] | undefined {
    const handler = this.#handlers[id]
    return handler ? [handler, this.#patterns[id] as string] : undefined
  }

  /** The id of a pattern and method, given out once and kept. */
  #reserve(pattern: string, method: string | undefined): number {
    const key = `${method ?? '*'} ${pattern}`
    let id = this.#ids.get(key)
    if (id === undefined) {
      id = this.#patterns.length
      this.#ids.set(key, id)
      this.#patterns.push(pattern)
      this.#handlers.push(undefined)
    }
    return id
  }

  /**
   * Checks `routes` and turns it into the engine's table, reading static responses. The
   * handlers take effect when `commit` is called, after the engine accepted the table.
   */
  async compile(routes: Routes<Server>): Promise<{ table: Binding.BindingRoute[]; commit: () => void }> {
    if (routes === null || typeof routes !== 'object' || Array.isArray(routes)) {
      throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'routes must be an object of pattern: handler')
    }
    const table: Binding.BindingRoute[] = []
    const pending: Array<[number, RouteHandler<Server>]> = []
    const add = async (pattern: string, method: string | undefined, target: unknown): Promise<void> => {
      const where = method ? `routes[${JSON.stringify(pattern)}].${method}` : `routes[${JSON.stringify(pattern)}]`
      let route: Binding.BindingRoute
      if (typeof target === 'function') {
        const id = this.#reserve(pattern, method)
        route = { pattern, method, handler: id }
        pending.push([id, target as RouteHandler<Server>])
      } else if (target instanceof FileRoute) {
        route = { pattern, method, files: target.options }
        if (target.kind === 'file') route.file = target.path
        else route.dir = target.path
      } else if (isStatic(target)) {
        const { status, headers, body } = await staticParts(target)
        route = { pattern, method, status, headers, body }
      } else {
        throw new InvalidArgumentError(
          'ERR_INVALID_ARG_VALUE',
          `${where} must be a handler function, a Response, a string, bytes, file() or dir()`,
        )
      }
      table.push(route)
    }
    for (const [pattern, value] of Object.entries(routes)) {
      if (value !== null && typeof value === 'object' && !isStatic(value) && !(value instanceof FileRoute)) {
        const methods = Object.entries(value)
        if (methods.length === 0) {
          throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `routes[${JSON.stringify(pattern)}] has no methods`)
        }
        for (const [method, target] of methods) {
          if (!METHOD.test(method)) {
            const hint = nearest(method.toUpperCase(), COMMON_METHODS)
            throw new InvalidArgumentError(
              'ERR_INVALID_ARG_VALUE',
              `routes[${JSON.stringify(pattern)}]: ${JSON.stringify(method)} is no method name (upper case)${hint ? `; did you mean ${hint}?` : ''}`,
            )
          }
          await add(pattern, method, target)
        }
      } else {
        await add(pattern, undefined, value)
      }
    }
    // Handlers are swapped only once the engine took the table; until then the table in
    // force keeps its own.
    return {
      table,
      commit: () => {
        for (const [id, handler] of pending) this.#handlers[id] = handler
      },
    }
  }
}

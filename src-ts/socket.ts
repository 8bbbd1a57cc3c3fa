// Raw TCP and TLS connections through the engine's own sockets and rustls: `connect()` and the
// `Socket` it returns (a Node Duplex, with `toWeb()` for a web stream pair and `startTls()` to
// upgrade a plain connection in place).
import { Duplex } from 'node:stream'
import { type ClientTlsOptions, nativeTlsOptions } from './client.js'
import { AbortError, fromNative, HypersockError, InvalidArgumentError } from './errors.js'
import { type Binding, native } from './native.js'
import { parseTls, type TlsDetails } from './tls.js'
import { checkInteger, checkOptions, optionKeys, U32 } from './validate.js'

/** Options of {@link connect}. */
export interface ConnectOptions {
  /** Host name or IP address to connect to. */
  hostname: string
  /** Port, 1-65535. */
  port: number
  /** TLS from the start: `true` for the defaults, or the client's TLS options. Default off. */
  tls?: boolean | ClientTlsOptions
  /** Protocols to offer by ALPN when TLS is on (e.g. `['imap']`, `['h2']`). */
  alpnProtocols?: string[]
  /** Time the TCP connect and TLS handshake may take, in ms. Default 0 (no limit beyond the OS's). */
  timeout?: number
  /** Aborts the connect; once connected, destroys the socket with an `AbortError`. */
  signal?: AbortSignal
  /**
   * Keep this side open when the peer ends its side (`end` is emitted; call `end()` yourself).
   * Default false: as a `net.Socket`, this side ends too once the peer has.
   */
  allowHalfOpen?: boolean
}

/** Options of {@link Socket.startTls}: the client's TLS options, the ALPN protocols to offer and a time limit. */
export interface StartTlsOptions extends ClientTlsOptions {
  /** Protocols to offer by ALPN in the handshake (e.g. `['imap']`). */
  alpnProtocols?: string[]
  /** Time the handshake may take, in ms; then it fails with `ETIMEDOUT` and the connection closes. Default 30 000. */
  timeout?: number
}

const CONNECT_KEYS = optionKeys<ConnectOptions>({
  hostname: true,
  port: true,
  tls: true,
  alpnProtocols: true,
  timeout: true,
  signal: true,
  allowHalfOpen: true,
})

const Kind = native.SocketEventKind

function checkAlpn(list: unknown): string[] | undefined {
  if (list === undefined) return undefined
  if (!Array.isArray(list) || !list.every((p) => typeof p === 'string' && p.length > 0 && p.length < 256)) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'alpnProtocols must be an array of non-empty strings')
  }
  return list
}

/**
 * A connection opened by {@link connect}: a Node `Duplex` of bytes. `end()` ends this side and
 * reading goes on until the peer ends; when the peer ends first, this side ends too unless
 * `allowHalfOpen`. Reading stops while the readable side is full, so TCP pushes back on the
 * peer. An open connection keeps the process alive, as a `net.Socket` does.
 */
export class Socket extends Duplex {
  #raw: Binding.BindingSocket
  #paused = false
  #tls: TlsDetails | undefined
  #upgrading = false

  /** @internal */
  constructor(raw: Binding.BindingSocket, allowHalfOpen = false) {
    super({ allowHalfOpen })
    this.#raw = raw
    raw.start(this.#onEvent)
  }

  #onEvent = (kind: number, data: Buffer | Error | null): void => {
    if (kind === Kind.Data && Buffer.isBuffer(data)) {
      if (!this.push(data) && !this.#paused) {
        this.#paused = true
        this.#raw.setReading(false)
      }
    } else if (kind === Kind.End) {
      this.push(null)
    } else if (kind === Kind.Error) {
      this.destroy(fromNative(data) as Error)
    } else if (kind === Kind.Close) {
      if (!this.destroyed) {
        if (!this.readableEnded) this.push(null)
        this.destroy()
      }
    }
  }

  /** Part of the `Duplex` implementation (resumes reading); not to be called directly. */
  override _read(): void {
    if (this.#paused) {
      this.#paused = false
      this.#raw.setReading(true)
    }
  }

  /** Part of the `Duplex` implementation (writes a chunk); not to be called directly, use `write()`. */
  override _write(chunk: Buffer, _encoding: BufferEncoding, done: (error?: Error | null) => void): void {
    this.#raw.write(chunk).then(
      () => done(),
      (err: unknown) => done(fromNative(err) as Error),
    )
  }

  /** Part of the `Duplex` implementation (ends this side); not to be called directly, use `end()`. */
  override _final(done: (error?: Error | null) => void): void {
    this.#raw.end().then(
      () => done(),
      (err: unknown) => done(fromNative(err) as Error),
    )
  }

  /** Part of the `Duplex` implementation (closes the connection); not to be called directly, use `destroy()`. */
  override _destroy(error: Error | null, done: (error?: Error | null) => void): void {
    this.#raw.destroy()
    done(error)
  }

  /** The peer's IP address. */
  get remoteAddress(): string {
    return this.#raw.remoteAddress
  }

  /** The peer's port. */
  get remotePort(): number {
    return this.#raw.remotePort
  }

  /** This side's IP address. */
  get localAddress(): string {
    return this.#raw.localAddress
  }

  /** This side's port. */
  get localPort(): number {
    return this.#raw.localPort
  }

  /** What the TLS handshake negotiated (as `res.tls` of the client), once TLS is on; undefined on a plain connection. */
  get tls(): TlsDetails | undefined {
    if (!this.#tls) {
      const json = this.#raw.tls
      if (json) this.#tls = parseTls(json)
    }
    return this.#tls
  }

  /**
   * Upgrades this plain connection to TLS in place (STARTTLS), after everything written so far
   * has gone out, with the client's TLS options (the server name defaults to the host
   * connected to). Resolves with the handshake; a failed handshake rejects with the client's
   * TLS error codes (`ERR_TLS_CERT_*`, `ERR_TLS_HANDSHAKE`) and closes the connection.
   */
  async startTls(options: StartTlsOptions = {}): Promise<TlsDetails> {
    const { alpnProtocols, timeout, ...tls } = options
    const alpn = checkAlpn(alpnProtocols)
    const timeoutMs = checkInteger('timeout', timeout, U32) ?? 30_000
    const bindingTls = nativeTlsOptions(tls)
    if (this.tls) throw new HypersockError('ERR_INVALID_STATE', 'the connection already uses TLS')
    if (this.#upgrading) throw new HypersockError('ERR_INVALID_STATE', 'startTls is already under way')
    if (this.destroyed || this.writableEnded) {
      throw new HypersockError('ERR_INVALID_STATE', 'the socket is closed or ended')
    }
    this.#upgrading = true
    try {
      // Everything written before goes out in plain text first.
      await new Promise<void>((resolve, reject) =>
        this.write(Buffer.alloc(0), (err) => (err ? reject(err) : resolve())),
      )
      this.#tls = parseTls(await this.#raw.startTls(bindingTls, alpn, timeoutMs))
    } catch (err) {
      throw fromNative(err)
    } finally {
      this.#upgrading = false
    }
    return this.#tls
  }

  /** The same connection as a web stream pair (`Duplex.toWeb`). */
  toWeb(): { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> } {
    return Duplex.toWeb(this) as { readable: ReadableStream<Uint8Array>; writable: WritableStream<Uint8Array> }
  }
}

/**
 * Opens a TCP connection, with TLS when `tls` is set, through the engine's own sockets and
 * rustls (the same TLS options and error codes as the HTTP client):
 *
 * ```ts
 * const socket = await connect({ hostname: 'mail.example', port: 587 })
 * socket.write('STARTTLS\r\n')
 * // ... once the server says go:
 * await socket.startTls()
 * ```
 */
export async function connect(options: ConnectOptions): Promise<Socket> {
  checkOptions('connect()', options, CONNECT_KEYS)
  if (typeof options.hostname !== 'string' || options.hostname === '') {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'connect() needs a hostname')
  }
  const port = options.port
  if (!Number.isInteger(port) || port < 1 || port > 65535) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `port must be an integer from 1 to 65535, not ${port}`)
  }
  const alpn = checkAlpn(options.alpnProtocols)
  const tls = options.tls
  if (alpn && !tls) {
    throw new InvalidArgumentError(
      'ERR_INVALID_ARG_VALUE',
      'alpnProtocols needs tls (ALPN is part of the TLS handshake)',
    )
  }
  if (tls !== undefined && typeof tls !== 'boolean' && (tls === null || typeof tls !== 'object')) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', 'tls must be a boolean or TLS options')
  }
  const bindingOptions: Binding.BindingSocketOptions = {
    secure: tls === true || (typeof tls === 'object' && tls !== null),
    tls: typeof tls === 'object' ? nativeTlsOptions(tls) : undefined,
    alpn,
    timeoutMs: checkInteger('timeout', options.timeout, U32),
  }
  // Brackets of an IPv6 literal are URL syntax, not part of the address.
  const host = options.hostname.replace(/^\[(.*)\]$/, '$1')
  const signal = options.signal
  if (signal?.aborted) throw new AbortError()
  const opening = native.socketConnect(host, port, bindingOptions)
  let raw: Binding.BindingSocket
  try {
    raw = signal
      ? await new Promise<Binding.BindingSocket>((resolve, reject) => {
          const abort = () => {
            reject(new AbortError())
            // A connection that opens after all is closed at once.
            opening.then(
              (late) => late.destroy(),
              () => {},
            )
          }
          signal.addEventListener('abort', abort, { once: true })
          opening.then(
            (r) => {
              signal.removeEventListener('abort', abort)
              resolve(r)
            },
            (e: unknown) => {
              signal.removeEventListener('abort', abort)
              reject(e)
            },
          )
        })
      : await opening
  } catch (err) {
    throw fromNative(err)
  }
  const socket = new Socket(raw, options.allowHalfOpen === true)
  if (signal) {
    const abort = () => socket.destroy(new AbortError())
    signal.addEventListener('abort', abort, { once: true })
    socket.once('close', () => signal.removeEventListener('abort', abort))
  }
  return socket
}

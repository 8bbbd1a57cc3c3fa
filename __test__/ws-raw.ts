// A raw WebSocket peer over a plain TCP socket, for sending frames a real client never would.
import { once } from 'node:events'
import net from 'node:net'

/** Builds one frame. Client frames are masked unless `mask` is false. */
export function frame(
  opcode: number,
  payload: Buffer | string = Buffer.alloc(0),
  opts: { fin?: boolean; rsv?: number; mask?: boolean; length?: number } = {},
): Buffer {
  const data = typeof payload === 'string' ? Buffer.from(payload) : payload
  const fin = opts.fin ?? true
  const mask = opts.mask ?? true
  const len = opts.length ?? data.length
  const head: number[] = [(fin ? 0x80 : 0) | ((opts.rsv ?? 0) << 4) | opcode]
  const m = mask ? 0x80 : 0
  if (len < 126) head.push(m | len)
  else if (len <= 0xffff) head.push(m | 126, len >> 8, len & 0xff)
  else {
    head.push(m | 127)
    const b = Buffer.alloc(8)
    b.writeBigUInt64BE(BigInt(len))
    head.push(...b)
  }
  if (!mask) return Buffer.concat([Buffer.from(head), data])
  const key = Buffer.from([0x37, 0xfa, 0x21, 0x3d])
  const body = Buffer.from(data.map((b, i) => b ^ (key[i % 4] as number)))
  return Buffer.concat([Buffer.from(head), key, body])
}

/** A frame read from the server. */
export interface Frame {
  opcode: number
  /** The FIN bit: the last frame of its message. */
  fin: boolean
  /** The RSV1-3 bits (4: RSV1, which permessage-deflate sets on a compressed message). */
  rsv: number
  payload: Buffer
}

/** The first whole (unmasked) frame in `buf` and what follows it, or null when it is not all there. */
export function parseFrame(buf: Buffer): { frame: Frame; rest: Buffer } | null {
  if (buf.length < 2) return null
  let len = (buf[1] as number) & 0x7f
  let pos = 2
  if (len === 126) {
    if (buf.length < 4) return null
    len = buf.readUInt16BE(2)
    pos = 4
  } else if (len === 127) {
    if (buf.length < 10) return null
    len = Number(buf.readBigUInt64BE(2))
    pos = 10
  }
  if (buf.length < pos + len) return null
  return {
    frame: {
      opcode: (buf[0] as number) & 0x0f,
      fin: ((buf[0] as number) & 0x80) !== 0,
      rsv: ((buf[0] as number) >> 4) & 0x07,
      payload: Buffer.from(buf.subarray(pos, pos + len)),
    },
    rest: buf.subarray(pos + len),
  }
}

/**
 * Frames from a server as they arrive on some byte stream: feed it with `push`, tell it the
 * stream ended with `end`, then read with `next` and `closeCode`.
 */
export class FrameReader {
  /** Bytes received and not yet read. */
  buf: Buffer = Buffer.alloc(0)
  #waiters: Array<() => void> = []
  ended = false

  push(d: Buffer): void {
    this.buf = Buffer.concat([this.buf, d])
    this.#wake()
  }

  end(): void {
    this.ended = true
    this.#wake()
  }

  #wake(): void {
    for (const w of this.#waiters.splice(0)) w()
  }

  /** Resolves at the next `push` or `end`. */
  async wait(): Promise<void> {
    await new Promise<void>((r) => this.#waiters.push(r))
  }

  /** The next frame from the server, or null once the stream ended. */
  async next(): Promise<Frame | null> {
    for (;;) {
      const parsed = parseFrame(this.buf)
      if (parsed) {
        this.buf = parsed.rest
        return parsed.frame
      }
      if (this.ended) return null
      await this.wait()
    }
  }

  /** Reads frames until a close frame and returns its code, or null if the stream just ended. */
  async closeCode(): Promise<number | null> {
    for (;;) {
      const f = await this.next()
      if (!f) return null
      if (f.opcode === 8) return f.payload.length >= 2 ? f.payload.readUInt16BE(0) : 1005
    }
  }

  /** Resolves once the stream ended. */
  async untilEnded(): Promise<void> {
    while (!this.ended) await this.wait()
  }
}

/** A raw client: `handshake` first, then `send` frames and `next` to read the server's frames. */
export class RawClient extends FrameReader {
  socket: net.Socket

  private constructor(socket: net.Socket) {
    super()
    this.socket = socket
    socket.on('data', (d: Buffer) => this.push(d))
    socket.on('close', () => this.end())
    socket.on('error', () => {})
  }

  static async connect(port: number, host = '127.0.0.1'): Promise<RawClient> {
    const socket = net.connect(port, host)
    await once(socket, 'connect')
    return new RawClient(socket)
  }

  /** Sends an upgrade request (with `extra` header lines) and returns the response head. */
  async handshake(path = '/', extra: string[] = []): Promise<string> {
    const lines = [
      `GET ${path} HTTP/1.1`,
      'Host: localhost',
      'Upgrade: websocket',
      'Connection: Upgrade',
      'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==',
      'Sec-WebSocket-Version: 13',
      ...extra,
    ]
    this.socket.write(`${lines.join('\r\n')}\r\n\r\n`)
    for (;;) {
      const end = this.buf.indexOf('\r\n\r\n')
      if (end >= 0) {
        const head = this.buf.subarray(0, end).toString('latin1')
        this.buf = this.buf.subarray(end + 4)
        return head
      }
      if (this.ended) return this.buf.toString('latin1')
      await this.wait()
    }
  }

  send(data: Buffer): void {
    this.socket.write(data)
  }

  destroy(): void {
    this.socket.destroy()
  }
}

// The server's WebSocket dispatcher: calls the application's handler for each event of the
// addon's event batches (decoded by wire/ws-events.ts).
import { encodeBody } from './body.js'
import { fromNative } from './errors.js'
import type { Binding } from './native.js'
import { ServerWebSocket, type UpgradeRequest, type UpgradeResult, type WebSocketHandler } from './server-websocket.js'
import { WsEvent } from './websocket-common.js'
import { flattenHeaders } from './wire/headers.js'
import { decodeWsEvents, type WsEventData } from './wire/ws-events.js'

function targetParts(target: string): { path: string; query: URLSearchParams } {
  const q = target.indexOf('?')
  return q < 0
    ? { path: target, query: new URLSearchParams() }
    : { path: target.slice(0, q), query: new URLSearchParams(target.slice(q + 1)) }
}

async function answerUpgrade<Data>(
  ws: ServerWebSocket<Data>,
  raw: Binding.BindingWebSocket,
  result: UpgradeResult<Data>,
): Promise<void> {
  if (result === false) {
    raw.reject(403, ['content-type', 'text/plain;charset=utf-8'], 'forbidden\n')
  } else if (result instanceof globalThis.Response) {
    const body = result.body === null ? null : Buffer.from(await result.arrayBuffer())
    raw.reject(result.status, flattenHeaders(result.headers), body)
  } else if (result && typeof result === 'object' && 'status' in result) {
    const { data, type } = encodeBody(result.body)
    const headers = flattenHeaders(result.headers)
    if (type && !headers.some((h, i) => i % 2 === 0 && h.toLowerCase() === 'content-type')) {
      headers.push('content-type', type)
    }
    raw.reject(result.status, headers, typeof data === 'string' || data === null ? data : Buffer.from(data))
  } else {
    const accept = result && typeof result === 'object' ? result : {}
    if (accept.data !== undefined) ws.data = accept.data
    raw.accept(accept.protocol ?? null, flattenHeaders(accept.headers))
  }
}

/**
 * Routes the addon's WebSocket events to a {@link WebSocketHandler}. Used by the server.
 * @internal
 */
export class WebSocketDispatcher<Data> {
  #handler: WebSocketHandler<Data>
  #sockets = new Map<number, ServerWebSocket<Data>>()
  #upgrading = new Map<number, ServerWebSocket<Data>>()
  #report: (error: unknown) => void

  constructor(handler: WebSocketHandler<Data>, report: (error: unknown) => void) {
    this.#handler = handler
    this.#report = report
  }

  /** Open connections. */
  get count(): number {
    return this.#sockets.size
  }

  /** The open connection with this id. */
  get(id: number): ServerWebSocket<Data> | undefined {
    return this.#sockets.get(id)
  }

  #upgrade(id: number, raw: Binding.BindingWebSocket): void {
    const ws = new ServerWebSocket<Data>(raw)
    this.#upgrading.set(id, ws)
    const { path, query } = targetParts(raw.url)
    const request: UpgradeRequest = {
      method: 'GET',
      url: raw.url,
      path,
      query,
      headers: ws.headers,
      remoteAddress: raw.remoteAddress,
      remotePort: raw.remotePort,
      protocols: raw.offeredProtocols,
    }
    const refuse = (error: unknown) => {
      this.#upgrading.delete(id)
      this.#report(error)
      try {
        raw.reject(500, ['content-type', 'text/plain;charset=utf-8'], 'internal server error\n')
      } catch {
        // already answered
      }
    }
    try {
      const out = this.#handler.upgrade?.(request)
      Promise.resolve(out)
        .then(async (result) => {
          await answerUpgrade(ws, raw, result)
          // A refused upgrade never opens.
          if (result === false || (result && typeof result === 'object' && 'status' in result)) {
            this.#upgrading.delete(id)
          }
        })
        .catch(refuse)
    } catch (error) {
      refuse(error)
    }
  }

  /**
   * Handles a batch from `takeWsEvents`: a buffer of encoded events (see `WsEventQueue::push`
   * in crates/node/src/wire/ws_events.rs) followed by the objects that go with some of them.
   */
  drain(batch: unknown[]): void {
    decodeWsEvents(batch, this.#decoded)
  }

  #decoded = (kind: number, id: number, object: unknown, data: WsEventData, code: number): void => {
    if (kind === WsEvent.Error) {
      this.event(kind, id, null, data, code)
      // Replies to earlier messages are queued now: the close frame may follow them.
      ;(object as Binding.BindingFailGate | undefined)?.release()
    } else {
      this.event(kind, id, object as Binding.BindingWebSocket | undefined, data, code)
    }
  }

  /** Handles one event from the addon. */
  event = (
    kind: number,
    id: number,
    socket: Binding.BindingWebSocket | null | undefined,
    data: string | Buffer | Error | null | undefined,
    code: number,
  ): void => {
    const h = this.#handler
    try {
      switch (kind) {
        case WsEvent.Upgrade:
          if (socket) this.#upgrade(id, socket)
          return
        case WsEvent.Open: {
          let ws = this.#upgrading.get(id)
          this.#upgrading.delete(id)
          if (!ws && socket) ws = new ServerWebSocket<Data>(socket)
          if (!ws) return
          this.#sockets.set(id, ws)
          h.open?.(ws)
          return
        }
        case WsEvent.Close: {
          const ws = this.#sockets.get(id)
          if (!ws) return
          this.#sockets.delete(id)
          ws.markClosed()
          h.close?.(ws, code, typeof data === 'string' ? data : '')
          return
        }
      }
      const ws = this.#sockets.get(id)
      if (!ws) return
      if (kind === WsEvent.Message) {
        if (data != null && !(data instanceof Error)) h.message?.(ws, data, typeof data !== 'string')
      } else if (kind === WsEvent.Drain) h.drain?.(ws)
      else if (kind === WsEvent.Written) ws.written(data)
      else if (kind === WsEvent.Ping) h.ping?.(ws, data as Buffer)
      else if (kind === WsEvent.Pong) h.pong?.(ws, data as Buffer)
      else if (kind === WsEvent.Error && data instanceof Error) {
        h.error?.(ws, fromNative(data) as Error)
      }
    } catch (error) {
      this.#report(error)
    }
  }
}

import { type Server, serve } from './server.js'
import type { WebSocketHandler } from './server-websocket.js'

/** Options of {@link serveWebSocket}: where to listen plus every WebSocket handler and limit. */
export interface WebSocketServeOptions<Data = unknown> extends WebSocketHandler<Data> {
  /** Port to listen on; 0 (the default) picks a free one, see `server.port`. */
  port?: number
  /** Interface to listen on. Default `127.0.0.1`; `::1` for IPv6, `0.0.0.0` for all. */
  hostname?: string
  /** Time a client has to send the upgrade request head. Default 30 000 ms. */
  headerReadTimeout?: number
  /** Value of the `Server` response header. Default none. */
  serverName?: string
}

/**
 * Starts a WebSocket-only server: the same handlers and limits as `serve({ websocket })`, and
 * plain HTTP requests get `426 Upgrade Required`.
 *
 * ```ts
 * const server = await serveWebSocket({ port: 8080, message(ws, data) { ws.send(data) } })
 * ```
 */
export function serveWebSocket<Data = unknown>(options: WebSocketServeOptions<Data>): Promise<Server<Data>> {
  const { port, hostname, headerReadTimeout, serverName, ...websocket } = options
  return serve<Data>({
    port,
    hostname,
    headerReadTimeout,
    serverName,
    websocket,
    fetch: () => ({
      status: 426,
      headers: { upgrade: 'websocket', connection: 'Upgrade', 'sec-websocket-version': '13' },
      body: 'this server only speaks WebSocket\n',
    }),
  })
}

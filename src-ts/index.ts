/**
 * hypersock: one fast, safe networking stack for Node.js on a Rust core.
 *
 * - {@link fetch} / {@link Client}: HTTP client with pooled keep-alive connections.
 * - {@link serve}: HTTP server with WebSocket upgrade on the same port.
 * - {@link WebSocket}: WHATWG WebSocket client with an async iterator of messages.
 */
export { Client, fetch, Response, type ClientOptions, type RequestInit } from './client.js'
export {
  AbortError,
  ConnectionError,
  HttpError,
  HypersockError,
  InvalidArgumentError,
  ServerError,
  TimeoutError,
  WebSocketError,
} from './errors.js'
export {
  serve,
  Server,
  ServerRequest,
  type ResponseLike,
  type ServeOptions,
  type StopOptions,
} from './server.js'
export { ServerWebSocket, type WebSocketHandler } from './server-websocket.js'
export {
  WebSocket,
  CloseEvent,
  ErrorEvent,
  type BinaryType,
  type WebSocketOptions,
} from './websocket.js'
export type { BodyInit } from './body.js'

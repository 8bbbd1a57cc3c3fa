/**
 * hypersock: one fast, safe networking stack for Node.js on a Rust core.
 *
 * - {@link fetch} / {@link Client}: HTTP client with pooled keep-alive connections.
 * - {@link serve}: HTTP server with WebSocket upgrade on the same port.
 * - {@link WebSocket}: WHATWG WebSocket client with an async iterator of messages.
 */

export type { BodyInit } from './body.js'
export { Client, type ClientOptions, fetch, type RequestInit, Response } from './client.js'
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
  type ResponseLike,
  type ServeOptions,
  Server,
  ServerRequest,
  type StopOptions,
  serve,
} from './server.js'
export {
  type CompressionOptions,
  PreparedMessage,
  prepare,
  ServerWebSocket,
  type UpgradeAccept,
  type UpgradeReject,
  type UpgradeRequest,
  type UpgradeResult,
  type WebSocketHandler,
  type WebSocketLimits,
} from './server-websocket.js'
export {
  type BinaryType,
  CloseEvent,
  ErrorEvent,
  WebSocket,
  type WebSocketOptions,
} from './websocket.js'
export { serveWebSocket, type WebSocketServeOptions } from './websocket-server.js'

/**
 * hypersock: one fast, safe networking stack for Node.js on a Rust core.
 *
 * - {@link fetch} / {@link Client}: HTTP client with pooled keep-alive connections.
 * - {@link serve}: HTTP server with WebSocket upgrade on the same port.
 * - {@link WebSocket}: WHATWG WebSocket client with an async iterator of messages.
 * - {@link Hub}: rooms, publish and broadcast fanned out in Rust; {@link RedisAdapter} across processes.
 * - {@link connect}: raw TCP/TLS connections through the same engine, with STARTTLS.
 *
 * @module hypersock
 */

export type { BodyInit } from './body.js'
export {
  Client,
  type ClientHooks,
  type ClientOptions,
  ClientResponse,
  type ClientTlsOptions,
  type Dispatch,
  fetch,
  type HookRequest,
  type Interceptor,
  type PoolStats,
  type Progress,
  type ProxyOptions,
  type RedirectHop,
  type RedirectOptions,
  type RequestInit,
  type RetryContext,
  type RetryOptions,
} from './client.js'
export type { ClientBodyInit } from './client-body.js'
export { type Cookie, CookieJar, type CookieJarOptions, type SaveOptions } from './cookie-jar.js'
export { configure, type EngineSettings, engineSettings } from './engine.js'
export {
  AbortError,
  ConnectionError,
  HttpError,
  HypersockError,
  type HypersockErrorOptions,
  InvalidArgumentError,
  ProxyError,
  RedirectError,
  ServerError,
  TimeoutError,
  type TimeoutPhase,
  TlsError,
  WebSocketError,
} from './errors.js'
export { EventSource, EventSourceErrorEvent, type EventSourceInit, events } from './event-source.js'
export {
  type ClusterMember,
  Hub,
  type HubMessage,
  type HubOptions,
  type HubTarget,
  type JoinOptions,
  type JoinResult,
  type PublishOptions,
  type PublishResult,
  RedisAdapter,
  type RedisAdapterOptions,
} from './hub.js'
export { Response } from './response.js'
export {
  type AccessLogEntry,
  type ReloadOptions,
  type ResponseLike,
  type ServeOptions,
  Server,
  ServerRequest,
  type ServerStats,
  type ServerTlsOptions,
  type StopOptions,
  serve,
  serveWebSocket,
  type WebSocketServeOptions,
} from './server.js'
export type { BodyChunk, BodyStreamSource, ResponseObject } from './server-response.js'
export {
  dir,
  FileRoute,
  type FileRouteOptions,
  file,
  type RouteHandler,
  type Routes,
  type RouteTarget,
  type StaticRoute,
} from './server-routes.js'
export { formatEvent, type ServerSentEvent, sse } from './server-sse.js'
export {
  ServerWebSocket,
  type UpgradeAccept,
  type UpgradeReject,
  type UpgradeRequest,
  type UpgradeResult,
  type WebSocketHandler,
} from './server-websocket.js'
export { type ConnectOptions, connect, Socket, type StartTlsOptions } from './socket.js'
export type { PeerCertificate, TlsDetails } from './tls.js'
export {
  type BinaryType,
  CloseEvent,
  ErrorEvent,
  WebSocket,
  type WebSocketOptions,
} from './websocket.js'
export {
  type CompressionOptions,
  PreparedMessage,
  prepare,
  type SendCallback,
  type SendOptions,
  type WebSocketLimits,
} from './websocket-common.js'

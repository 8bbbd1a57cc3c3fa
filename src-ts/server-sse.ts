import type { ResponseObject } from './server-response.js'

/** One Server-Sent Event. `data` objects are sent as JSON. */
export interface ServerSentEvent {
  /** The data, split into `data:` lines; an object is sent as its JSON. */
  data?: string | object
  /** The event type (the client's `message` when left out). */
  event?: string
  /** The event ID; the client sends it back as `Last-Event-ID` when it reconnects. */
  id?: string
  /** Reconnection delay the client should use, in ms. */
  retry?: number
  /** A comment line (ignored by clients; useful as a keep-alive). */
  comment?: string
}

function clean(value: string, field: string): string {
  if (/[\r\n]/.test(value)) throw new TypeError(`SSE ${field} must not contain line breaks`)
  return value
}

/** Formats one event in the `text/event-stream` format. */
export function formatEvent(event: ServerSentEvent | string): string {
  if (typeof event === 'string') event = { data: event }
  let out = ''
  if (event.comment !== undefined) for (const line of event.comment.split(/\r\n|\r|\n/)) out += `: ${line}\n`
  if (event.event !== undefined) out += `event: ${clean(event.event, 'event')}\n`
  if (event.id !== undefined) out += `id: ${clean(event.id, 'id')}\n`
  if (event.retry !== undefined) out += `retry: ${Math.max(0, Math.floor(event.retry))}\n`
  if (event.data !== undefined) {
    const data = typeof event.data === 'string' ? event.data : JSON.stringify(event.data)
    for (const line of data.split(/\r\n|\r|\n/)) out += `data: ${line}\n`
  }
  return `${out}\n`
}

/**
 * A Server-Sent Events response: each event the source yields is sent as soon as it is produced.
 *
 * ```ts
 * serve({ fetch: () => sse(async function* () { yield { event: 'tick', data: { n: 1 } } }()) })
 * ```
 */
export function sse(
  source: AsyncIterable<ServerSentEvent | string> | Iterable<ServerSentEvent | string>,
  init: { status?: number; headers?: Record<string, string> } = {},
): ResponseObject {
  async function* body(): AsyncGenerator<string> {
    for await (const event of source) yield formatEvent(event)
  }
  return {
    status: init.status ?? 200,
    headers: {
      'content-type': 'text/event-stream; charset=utf-8',
      'cache-control': 'no-cache',
      ...init.headers,
    },
    body: body(),
  }
}

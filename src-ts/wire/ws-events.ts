// The server's WebSocket event batch, the TS side of crates/node/src/wire/ws_events.rs
// (`WsEventQueue::push`, where the layout is described): `[buffer of encoded events, ...objects]`.

import { native } from '../native.js'
import { type Batch, u16, u32 } from './bytes.js'

/** Flags of an encoded event, read from the addon. */
const {
  Binary: EVENT_BINARY,
  Data: EVENT_DATA,
  Object: EVENT_OBJECT,
  DataObject: EVENT_DATA_OBJECT,
  Region: EVENT_REGION,
} = native.WsEventFlag

/** What an event carries: a text or binary message, a close reason, a ping payload, an error. */
export type WsEventData = string | Buffer | Error | undefined

/**
 * Calls `each` with every event of `batch`, in order: its kind (`WsEventKind`), the connection
 * id, the object that goes with it (a socket on open and upgrade, a fail gate on error), its
 * data and its close code. Binary messages that arrived together share one `ArrayBuffer`.
 */
export function decodeWsEvents(
  batch: unknown[],
  each: (kind: number, id: number, object: unknown, data: WsEventData, code: number) => void,
): void {
  const buf = batch[0] as Batch
  let next = 1
  let region: ArrayBuffer | undefined
  for (let o = 0; o + 16 <= buf.length; ) {
    const kind = buf[o] as number
    const flags = buf[o + 1] as number
    const code = u16(buf, o + 2)
    const id = u32(buf, o + 4) + u32(buf, o + 8) * 0x100000000
    const start = o + 16
    o = start + u32(buf, o + 12)
    let data: WsEventData
    if (flags & EVENT_REGION) {
      if (flags & EVENT_DATA_OBJECT) region = batch[next++] as ArrayBuffer
      data = Buffer.from(region as ArrayBuffer, u32(buf, start), u32(buf, start + 4))
    } else if (flags & EVENT_DATA_OBJECT) {
      // A large payload: its own string, or an ArrayBuffer (possibly over the addon's memory);
      // an error event's error.
      const value = batch[next++] as string | ArrayBuffer | Error
      data = typeof value === 'string' || value instanceof Error ? value : Buffer.from(value)
    } else if (flags & EVENT_DATA)
      data = flags & EVENT_BINARY ? Buffer.from(buf.subarray(start, o)) : buf.utf8Slice(start, o)
    each(kind, id, flags & EVENT_OBJECT ? batch[next++] : undefined, data, code)
  }
}

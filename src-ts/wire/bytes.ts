// Reading the little-endian batches the addon hands over (server requests, WebSocket events).

/** Node's Buffer has these (undocumented, stable) string decoders; they skip `toString`'s checks. */
export type Batch = Buffer & {
  latin1Slice(start: number, end: number): string
  utf8Slice(start: number, end: number): string
}

export function u16(b: Buffer, o: number): number {
  return (b[o] as number) | ((b[o + 1] as number) << 8)
}

export function u32(b: Buffer, o: number): number {
  return (
    ((b[o] as number) | ((b[o + 1] as number) << 8) | ((b[o + 2] as number) << 16)) + (b[o + 3] as number) * 0x1000000
  )
}

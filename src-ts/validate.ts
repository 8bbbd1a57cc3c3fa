// Validation of numeric options shared by the public API.
import { InvalidArgumentError } from './errors.js'

/** The largest value of a u32 option (milliseconds, counts). */
export const U32 = 0xffffffff

/** `value` (or `fallback` when undefined) as an integer from 0 to `max`; throws `ERR_INVALID_ARG_VALUE` otherwise. */
export function checkInteger(
  name: string,
  value: number | undefined,
  fallback: number,
  max = Number.MAX_SAFE_INTEGER,
): number {
  const v = value ?? fallback
  if (!Number.isSafeInteger(v) || v < 0 || v > max) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `${name} must be an integer from 0 to ${max}`)
  }
  return v
}

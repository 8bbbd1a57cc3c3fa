// The proxy option shared by the HTTP client and the WebSocket client.
import { checkOptions, optionKeys } from './validate.js'

/**
 * Proxy options: a proxy URL (`http://user:pass@host:port`, the user info sent as basic
 * `Proxy-Authorization`), `'env'` for `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY`, or both with a
 * bypass list.
 */
export type ProxyOptions = string | 'env' | { url?: string; env?: boolean; noProxy?: string[] }

const PROXY_KEYS = optionKeys<Exclude<ProxyOptions, string>>({ url: true, env: true, noProxy: true })

/** @internal The native form of a {@link ProxyOptions}. */
export function proxyOptions(p: ProxyOptions | undefined): {
  proxy?: string
  proxyFromEnv: boolean
  noProxy?: string[]
} {
  if (p === undefined) return { proxyFromEnv: false }
  if (p === 'env') return { proxyFromEnv: true }
  if (typeof p === 'string') return { proxy: p, proxyFromEnv: false }
  checkOptions('proxy', p, PROXY_KEYS)
  return { proxy: p.url, proxyFromEnv: !!p.env, noProxy: p.noProxy }
}

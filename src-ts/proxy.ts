// The proxy option shared by the HTTP client and the WebSocket client.

/**
 * Proxy options: a proxy URL (`http://user:pass@host:port`, the user info sent as basic
 * `Proxy-Authorization`), `'env'` for `HTTP_PROXY`/`HTTPS_PROXY`/`NO_PROXY`, or both with a
 * bypass list.
 */
export type ProxyOptions = string | 'env' | { url?: string; env?: boolean; noProxy?: string[] }

/** @internal The native form of a {@link ProxyOptions}. */
export function proxyOptions(p: ProxyOptions | undefined): {
  proxy?: string
  proxyFromEnv: boolean
  noProxy?: string[]
} {
  if (p === undefined) return { proxyFromEnv: false }
  if (p === 'env') return { proxyFromEnv: true }
  if (typeof p === 'string') return { proxy: p, proxyFromEnv: false }
  return { proxy: p.url, proxyFromEnv: !!p.env, noProxy: p.noProxy }
}

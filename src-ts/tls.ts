// What a TLS handshake negotiated, as the client and the server both report it, and the one rule
// every TLS options object is checked by.
import { InvalidArgumentError } from './errors.js'
import { nearest } from './validate.js'

type TlsField = 'boolean' | 'string' | 'names' | 'pem' | 'pems' | 'list' | 'version'

/** The fields of the TLS options of the client (HTTP, WebSocket, Redis) and of the server. */
export const CLIENT_TLS_FIELDS: Record<string, TlsField> = {
  ca: 'pems',
  defaultRoots: 'boolean',
  cert: 'pem',
  key: 'pem',
  rejectUnauthorized: 'boolean',
  minVersion: 'version',
  maxVersion: 'version',
  servername: 'string',
}
/** The fields of one `tls.sni` entry of the server. */
export const SNI_FIELDS: Record<string, TlsField> = { serverName: 'names', cert: 'pem', key: 'pem' }
export const SERVER_TLS_FIELDS: Record<string, TlsField> = {
  cert: 'pem',
  key: 'pem',
  sni: 'list',
  clientCa: 'pems',
  requireClientCert: 'boolean',
  minVersion: 'version',
}

const isPem = (v: unknown) => typeof v === 'string' || Buffer.isBuffer(v)

/**
 * Checks a TLS options object by one rule, wherever it is given: an object of known keys, booleans
 * that are booleans (`rejectUnauthorized: 0` is refused, not taken as "verify"), PEM as text or
 * Buffers, versions `'TLSv1.2'`/`'TLSv1.3'`. Throws `ERR_INVALID_ARG_VALUE` naming the field.
 */
export function checkTlsOptions(where: string, tls: unknown, fields: Record<string, TlsField>): void {
  if (tls === undefined) return
  if (tls === null || typeof tls !== 'object' || Array.isArray(tls)) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `${where} must be an object`)
  }
  for (const [key, value] of Object.entries(tls)) {
    const kind = fields[key]
    if (kind === undefined) {
      const hint = nearest(key, Object.keys(fields))
      throw new InvalidArgumentError(
        'ERR_INVALID_ARG_VALUE',
        `${where}.${key} is not a TLS option${hint ? ` (did you mean ${where}.${hint}?)` : ''}`,
      )
    }
    if (value === undefined) continue
    const ok =
      kind === 'boolean'
        ? typeof value === 'boolean'
        : kind === 'string'
          ? typeof value === 'string'
          : kind === 'names'
            ? typeof value === 'string' || (Array.isArray(value) && value.every((v) => typeof v === 'string'))
            : kind === 'pem'
              ? isPem(value)
              : kind === 'pems'
                ? isPem(value) || (Array.isArray(value) && value.every(isPem))
                : kind === 'list'
                  ? Array.isArray(value)
                  : value === 'TLSv1.2' || value === 'TLSv1.3'
    if (!ok) {
      const want = {
        boolean: 'true or false',
        string: 'a string',
        names: 'a string or an array of strings',
        pem: 'PEM text or a Buffer',
        pems: 'PEM text, a Buffer or an array of them',
        list: 'an array',
        version: "'TLSv1.2' or 'TLSv1.3'",
      }[kind]
      throw new InvalidArgumentError(
        'ERR_INVALID_ARG_VALUE',
        `${where}.${key} must be ${want}, not ${JSON.stringify(value) ?? typeof value}`,
      )
    }
  }
}

/** A certificate of the peer. */
export interface PeerCertificate {
  /** Subject distinguished name, e.g. `CN=example.com, O=Example`. */
  subject: string
  /** Common name of the subject, or null when there is none. */
  subjectCN: string | null
  /** Issuer distinguished name. */
  issuer: string
  /** Subject alternative names: `DNS:name`, `IP:addr`, `URI:...`, `email:...`. */
  subjectAltNames: string[]
  /** Start of validity. */
  validFrom: Date
  /** End of validity. */
  validTo: Date
  /** Serial number, upper-case hex. */
  serialNumber: string
  /** SHA-256 of the DER, `AB:CD:...`. */
  fingerprint256: string
  /** True for a CA certificate. */
  isCA: boolean
  /** The DER bytes. */
  raw: Buffer
}

/** The TLS handshake of the connection a response came over. */
export interface TlsDetails {
  /** `'TLSv1.2'` or `'TLSv1.3'`. */
  protocol: string
  /** Cipher suite, e.g. `TLS13_AES_128_GCM_SHA256`. */
  cipher: string
  /** Protocol chosen by ALPN (`'h2'`, `'http/1.1'`) or null. */
  alpnProtocol: string | null
  /** Server side: the host name the client asked for with SNI. */
  serverName?: string | null
  /** The peer's chain, leaf first (on a server: the client's certificates, if it sent any). */
  chain: PeerCertificate[]
}

interface RawCert {
  subject: string
  subjectCn: string | null
  issuer: string
  subjectAltNames: string[]
  validFrom: string
  validTo: string
  serialNumber: string
  fingerprint256: string
  isCa: boolean
  raw: string
}

/** Parses the addon's JSON description of a TLS connection. */
export function parseTls(json: string): TlsDetails {
  const raw = JSON.parse(json) as {
    protocol: string
    cipher: string
    alpnProtocol: string | null
    serverName?: string | null
    chain: RawCert[]
  }
  return {
    protocol: raw.protocol,
    cipher: raw.cipher,
    alpnProtocol: raw.alpnProtocol,
    ...(raw.serverName !== undefined && { serverName: raw.serverName }),
    chain: raw.chain.map((c) => ({
      subject: c.subject,
      subjectCN: c.subjectCn,
      issuer: c.issuer,
      subjectAltNames: c.subjectAltNames,
      validFrom: new Date(c.validFrom),
      validTo: new Date(c.validTo),
      serialNumber: c.serialNumber,
      fingerprint256: c.fingerprint256,
      isCA: c.isCa,
      raw: Buffer.from(c.raw, 'base64'),
    })),
  }
}

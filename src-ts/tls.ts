// What a TLS handshake negotiated, as the client and the server both report it.

/** A certificate of the peer. */
export interface PeerCertificate {
  subject: string
  subjectCN: string | null
  issuer: string
  subjectAltNames: string[]
  validFrom: Date
  validTo: Date
  serialNumber: string
  /** SHA-256 of the DER, `AB:CD:...`. */
  fingerprint256: string
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

/**
 * hypersock/testing: helpers for tests. Certificates are made on the spot (rcgen, ECDSA P-256), so
 * tests use real TLS without committed keys.
 *
 * ```ts
 * import { generateCertificate } from 'hypersock/testing'
 * const ca = generateCertificate({ isCa: true })
 * const server = generateCertificate({ ca })
 * const client = new Client({ tls: { ca: ca.cert } })
 * ```
 */
import { fromNative, InvalidArgumentError } from './errors.js'
import { native } from './native.js'
import { checkOptions, optionKeys } from './validate.js'

/** A certificate and its private key, PEM. */
export interface CertificateAndKey {
  /** The certificate (PEM). */
  cert: string
  /** Its PKCS#8 private key (PEM). */
  key: string
}

/** Options of {@link generateCertificate}. */
export interface CertificateOptions {
  /** Subject common name. Default `localhost` (`hypersock test CA` for a CA). */
  commonName?: string
  /** DNS names and IP addresses. Default `localhost`, `127.0.0.1`, `::1` (none for a CA). */
  subjectAltNames?: string[]
  /** Make a CA that can sign other certificates. Default false. */
  isCa?: boolean
  /** Sign with this CA instead of self-signing. */
  ca?: CertificateAndKey
  /** Start of validity. Default one hour ago. */
  notBefore?: Date
  /** End of validity. Default one year from now. */
  notAfter?: Date
}

const CERTIFICATE_KEYS = optionKeys<CertificateOptions>({
  commonName: true,
  subjectAltNames: true,
  isCa: true,
  ca: true,
  notBefore: true,
  notAfter: true,
})

function seconds(name: string, d: Date | undefined): number | undefined {
  if (d === undefined) return undefined
  if (!(d instanceof Date) || Number.isNaN(d.getTime())) {
    throw new InvalidArgumentError('ERR_INVALID_ARG_VALUE', `${name} must be a valid Date`)
  }
  return Math.floor(d.getTime() / 1000)
}

/** Generates a certificate: self-signed, or signed by `options.ca`. */
export function generateCertificate(options: CertificateOptions = {}): CertificateAndKey {
  checkOptions('generateCertificate()', options, CERTIFICATE_KEYS)
  try {
    return native.generateCertificateNative({
      commonName: options.commonName,
      subjectAltNames: options.subjectAltNames,
      isCa: options.isCa,
      caCert: options.ca?.cert,
      caKey: options.ca?.key,
      notBefore: seconds('notBefore', options.notBefore),
      notAfter: seconds('notAfter', options.notAfter),
    })
  } catch (err) {
    throw fromNative(err)
  }
}

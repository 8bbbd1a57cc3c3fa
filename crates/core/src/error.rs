//! One error type for the engine, with a stable code per kind.

use std::io;

/// Errors of the engine. [`Error::code`] gives the stable string that the JS layer exposes as
/// `err.code`; the `Display` text is for people.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The URL could not be parsed or uses a scheme that the operation does not support.
    #[error("invalid URL {url:?}: {reason}")]
    InvalidUrl { url: String, reason: String },
    /// A request method, header name or header value is not valid HTTP.
    #[error("invalid argument: {0}")]
    InvalidArgument(String),
    /// The peer refused the TCP connection.
    #[error("connection refused by {0}")]
    ConnectionRefused(String),
    /// The host name could not be resolved.
    #[error("could not resolve host {0}")]
    Dns(String),
    /// An operation did not finish within its time limit.
    #[error("{0} timed out")]
    Timeout(&'static str),
    /// The connection was reset or closed before the operation finished.
    #[error("connection reset: {0}")]
    ConnectionReset(String),
    /// The peer broke the HTTP protocol.
    #[error("HTTP protocol error: {0}")]
    Http(String),
    /// A body was larger than the configured limit.
    #[error("body larger than the limit of {limit} bytes")]
    BodyTooLarge { limit: usize },
    /// A Server-Sent Events line or event was over the size limit.
    #[error("event stream line or event larger than the limit of {limit} bytes (raise maxEventSize if the server is trusted)")]
    EventTooLarge { limit: usize },
    /// The WebSocket handshake was refused or malformed.
    #[error("WebSocket handshake failed: {0}")]
    WsHandshake(String),
    /// The WebSocket connection is not open.
    #[error("WebSocket is not open")]
    WsClosed,
    /// The WebSocket peer broke the protocol (close 1002).
    #[error("WebSocket protocol error: {0}")]
    WsProtocol(String),
    /// A WebSocket message was over the size limit (close 1009).
    #[error("WebSocket message too big: {0}")]
    WsMessageTooBig(String),
    /// A WebSocket text message was not valid UTF-8 (close 1007).
    #[error("WebSocket text message is not valid UTF-8")]
    WsInvalidUtf8,
    /// Could not bind the listening socket.
    #[error("could not listen on {addr}: {source}")]
    Listen { addr: String, source: io::Error },
    /// A TLS handshake failed (one [`TlsFailure`] kind per cause) or a TLS setting is not valid.
    #[error("{message}")]
    Tls {
        /// What went wrong.
        kind: TlsFailure,
        /// What happened and what to do, for people.
        message: String,
    },
    /// A redirect chain was longer than the limit, or came back to a URL already visited.
    #[error("{0}")]
    TooManyRedirects(String),
    /// A redirect was refused: https to http, an unsupported scheme, or a bad `Location`.
    #[error("{0}")]
    RedirectRefused(String),
    /// A request body that was streamed cannot be sent a second time (redirect or retry).
    #[error("{0}")]
    BodyNotReplayable(String),
    /// An HTTP proxy refused the tunnel (`407`: authentication required).
    #[error("{message} (status {status})")]
    ProxyRefused {
        /// Status of the proxy's answer to `CONNECT`.
        status: u16,
        /// What happened and what to do.
        message: String,
    },
    /// A compressed body could not be decoded.
    #[error("could not decode the {0} response body")]
    Decode(String),
    /// The operation was cancelled by its caller (an `AbortSignal`).
    #[error("the operation was aborted")]
    Aborted,
    /// The hub's adapter (Redis) is not connected or answered with an error.
    #[error("hub adapter: {0}")]
    Adapter(String),
    /// Any other I/O error.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
}

/// Why a TLS handshake failed. Each kind has its own code (see [`Error::code`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TlsFailure {
    /// The server's certificate is past its `notAfter` (`ERR_TLS_CERT_EXPIRED`).
    CertExpired,
    /// The server's certificate is before its `notBefore` (`ERR_TLS_CERT_NOT_YET_VALID`).
    CertNotYetValid,
    /// The server's certificate signed itself and is not trusted (`ERR_TLS_CERT_SELF_SIGNED`).
    CertSelfSigned,
    /// The certificate does not name the host that was asked for (`ERR_TLS_CERT_HOSTNAME`).
    CertHostname,
    /// The certificate chains to no trusted root (`ERR_TLS_CERT_UNKNOWN_CA`).
    CertUnknownCa,
    /// Any other certificate problem (`ERR_TLS_CERT_INVALID`).
    CertInvalid,
    /// The handshake failed for another reason: alert, version or cipher mismatch
    /// (`ERR_TLS_HANDSHAKE`).
    Handshake,
    /// A certificate, key or TLS option given by the user is not valid (`ERR_TLS_CONFIG`).
    Config,
}

impl TlsFailure {
    /// The stable code of this kind.
    pub fn code(self) -> &'static str {
        match self {
            TlsFailure::CertExpired => "ERR_TLS_CERT_EXPIRED",
            TlsFailure::CertNotYetValid => "ERR_TLS_CERT_NOT_YET_VALID",
            TlsFailure::CertSelfSigned => "ERR_TLS_CERT_SELF_SIGNED",
            TlsFailure::CertHostname => "ERR_TLS_CERT_HOSTNAME",
            TlsFailure::CertUnknownCa => "ERR_TLS_CERT_UNKNOWN_CA",
            TlsFailure::CertInvalid => "ERR_TLS_CERT_INVALID",
            TlsFailure::Handshake => "ERR_TLS_HANDSHAKE",
            TlsFailure::Config => "ERR_TLS_CONFIG",
        }
    }
}

/// Result alias of the engine.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// The stable code of this error, shown to JS users as `err.code`.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidUrl { .. } => "ERR_INVALID_URL",
            Error::InvalidArgument(_) => "ERR_INVALID_ARG_VALUE",
            Error::ConnectionRefused(_) => "ECONNREFUSED",
            Error::Dns(_) => "ENOTFOUND",
            Error::Timeout(_) => "ETIMEDOUT",
            Error::ConnectionReset(_) => "ECONNRESET",
            Error::Http(_) => "ERR_HTTP_PROTOCOL",
            Error::BodyTooLarge { .. } => "ERR_BODY_TOO_LARGE",
            Error::EventTooLarge { .. } => "ERR_SSE_EVENT_TOO_LARGE",
            Error::WsHandshake(_) => "ERR_WS_HANDSHAKE",
            Error::WsClosed => "ERR_WS_CLOSED",
            Error::WsProtocol(_) => "ERR_WS_PROTOCOL",
            Error::WsMessageTooBig(_) => "ERR_WS_MESSAGE_TOO_BIG",
            Error::WsInvalidUtf8 => "ERR_WS_INVALID_UTF8",
            Error::Listen { source, .. } if source.kind() == io::ErrorKind::AddrInUse => {
                "EADDRINUSE"
            }
            Error::Listen { .. } => "ERR_LISTEN",
            Error::Tls { kind, .. } => kind.code(),
            Error::Aborted => "ABORT_ERR",
            Error::TooManyRedirects(_) => "ERR_TOO_MANY_REDIRECTS",
            Error::RedirectRefused(_) => "ERR_REDIRECT_REFUSED",
            Error::BodyNotReplayable(_) => "ERR_BODY_NOT_REPLAYABLE",
            Error::ProxyRefused { status: 407, .. } => "ERR_PROXY_AUTH_REQUIRED",
            Error::ProxyRefused { .. } => "ERR_PROXY_TUNNEL",
            Error::Decode(_) => "ERR_DECODE",
            Error::Adapter(_) => "ERR_HUB_ADAPTER",
            Error::Io(e) => io_code(e),
        }
    }

    /// Classifies an I/O error met while talking to `peer`.
    pub fn from_io(e: io::Error, peer: &str) -> Error {
        match e.kind() {
            io::ErrorKind::ConnectionRefused => Error::ConnectionRefused(peer.to_string()),
            io::ErrorKind::ConnectionReset
            | io::ErrorKind::ConnectionAborted
            | io::ErrorKind::BrokenPipe
            | io::ErrorKind::UnexpectedEof => Error::ConnectionReset(format!("{peer}: {e}")),
            io::ErrorKind::TimedOut => Error::Timeout("connect"),
            _ => Error::Io(e),
        }
    }

    /// True when this error is a time-out.
    pub fn is_timeout(&self) -> bool {
        matches!(self, Error::Timeout(_))
    }
}

fn io_code(e: &io::Error) -> &'static str {
    match e.kind() {
        io::ErrorKind::ConnectionRefused => "ECONNREFUSED",
        io::ErrorKind::ConnectionReset | io::ErrorKind::ConnectionAborted => "ECONNRESET",
        io::ErrorKind::BrokenPipe => "EPIPE",
        io::ErrorKind::TimedOut => "ETIMEDOUT",
        io::ErrorKind::AddrInUse => "EADDRINUSE",
        _ => "ERR_IO",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_map_to_node_codes() {
        let refused = Error::from_io(io::Error::from(io::ErrorKind::ConnectionRefused), "x:1");
        assert_eq!(refused.code(), "ECONNREFUSED");
        let reset = Error::from_io(io::Error::from(io::ErrorKind::ConnectionReset), "x:1");
        assert_eq!(reset.code(), "ECONNRESET");
        let listen = Error::Listen {
            addr: "127.0.0.1:1".into(),
            source: io::Error::from(io::ErrorKind::AddrInUse),
        };
        assert_eq!(listen.code(), "EADDRINUSE");
    }
}

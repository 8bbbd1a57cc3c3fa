//! Server counters and their Prometheus text exposition.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Live counters of a server, updated lock-free by every connection.
#[derive(Debug, Default)]
pub struct Stats {
    pub(crate) connections_open: AtomicU64,
    pub(crate) connections_total: AtomicU64,
    pub(crate) requests_total: AtomicU64,
    pub(crate) requests_in_flight: AtomicU64,
    pub(crate) bytes_in: AtomicU64,
    pub(crate) bytes_out: AtomicU64,
    pub(crate) websockets_total: AtomicU64,
    pub(crate) websockets_h2_total: AtomicU64,
    pub(crate) responses: [AtomicU64; 5],
    pub(crate) rejected_overload: AtomicU64,
    pub(crate) timeouts: AtomicU64,
    pub(crate) tls_failures: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Connections open now (HTTP and upgraded).
    pub connections_open: u64,
    /// Connections accepted since start.
    pub connections_total: u64,
    /// Requests received since start.
    pub requests_total: u64,
    /// Requests being handled now.
    pub requests_in_flight: u64,
    /// Bytes read from clients.
    pub bytes_in: u64,
    /// Bytes written to clients.
    pub bytes_out: u64,
    /// WebSocket connections open now.
    pub websockets_open: u64,
    /// WebSocket connections accepted since start.
    pub websockets_total: u64,
    /// Of those, the ones on an HTTP/2 stream (RFC 8441).
    pub websockets_h2_total: u64,
    /// Responses by status class: 1xx, 2xx, 3xx, 4xx, 5xx.
    pub responses: [u64; 5],
    /// Requests answered 503 because the handler queue was full.
    pub rejected_overload: u64,
    /// Connections or requests cut by a timeout.
    pub timeouts: u64,
    /// TLS handshakes that failed or timed out.
    pub tls_failures: u64,
}

impl Stats {
    pub(crate) fn count_response(&self, status: u16) {
        let class = usize::from(status / 100).clamp(1, 5) - 1;
        self.responses[class].fetch_add(1, Relaxed);
    }

    /// Reads every counter.
    pub fn snapshot(&self, websockets_open: u64) -> StatsSnapshot {
        StatsSnapshot {
            connections_open: self.connections_open.load(Relaxed),
            connections_total: self.connections_total.load(Relaxed),
            requests_total: self.requests_total.load(Relaxed),
            requests_in_flight: self.requests_in_flight.load(Relaxed),
            bytes_in: self.bytes_in.load(Relaxed),
            bytes_out: self.bytes_out.load(Relaxed),
            websockets_open,
            websockets_total: self.websockets_total.load(Relaxed),
            websockets_h2_total: self.websockets_h2_total.load(Relaxed),
            responses: std::array::from_fn(|i| self.responses[i].load(Relaxed)),
            rejected_overload: self.rejected_overload.load(Relaxed),
            timeouts: self.timeouts.load(Relaxed),
            tls_failures: self.tls_failures.load(Relaxed),
        }
    }
}

impl StatsSnapshot {
    /// The counters in the Prometheus text exposition format (version 0.0.4).
    pub fn prometheus(&self, prefix: &str) -> String {
        let mut out = String::new();
        let mut metric = |name: &str, kind: &str, help: &str, value: u64| {
            let _ = writeln!(out, "# HELP {prefix}_{name} {help}");
            let _ = writeln!(out, "# TYPE {prefix}_{name} {kind}");
            let _ = writeln!(out, "{prefix}_{name} {value}");
        };
        metric(
            "connections_open",
            "gauge",
            "Connections open now.",
            self.connections_open,
        );
        metric(
            "connections_total",
            "counter",
            "Connections accepted.",
            self.connections_total,
        );
        metric(
            "requests_total",
            "counter",
            "HTTP requests received.",
            self.requests_total,
        );
        metric(
            "requests_in_flight",
            "gauge",
            "HTTP requests being handled.",
            self.requests_in_flight,
        );
        metric(
            "received_bytes_total",
            "counter",
            "Bytes read from clients.",
            self.bytes_in,
        );
        metric(
            "sent_bytes_total",
            "counter",
            "Bytes written to clients.",
            self.bytes_out,
        );
        metric(
            "websockets_open",
            "gauge",
            "WebSocket connections open now.",
            self.websockets_open,
        );
        metric(
            "websockets_total",
            "counter",
            "WebSocket connections accepted.",
            self.websockets_total,
        );
        metric(
            "websockets_h2_total",
            "counter",
            "WebSocket connections accepted on an HTTP/2 stream (RFC 8441).",
            self.websockets_h2_total,
        );
        metric(
            "overload_rejections_total",
            "counter",
            "Requests answered 503 because the handler queue was full.",
            self.rejected_overload,
        );
        metric(
            "timeouts_total",
            "counter",
            "Connections or requests cut by a timeout.",
            self.timeouts,
        );
        let _ = writeln!(
            out,
            "# HELP {prefix}_responses_total HTTP responses sent, by status class."
        );
        let _ = writeln!(out, "# TYPE {prefix}_responses_total counter");
        for (i, n) in self.responses.iter().enumerate() {
            let _ = writeln!(out, "{prefix}_responses_total{{code=\"{}xx\"}} {n}", i + 1);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_text_has_help_type_and_values() {
        let stats = Stats::default();
        stats.requests_total.fetch_add(3, Relaxed);
        stats.count_response(200);
        stats.count_response(404);
        stats.count_response(404);
        let text = stats.snapshot(2).prometheus("hypersock");
        assert!(
            text.contains("# TYPE hypersock_requests_total counter\nhypersock_requests_total 3\n")
        );
        assert!(text.contains("hypersock_responses_total{code=\"2xx\"} 1\n"));
        assert!(text.contains("hypersock_responses_total{code=\"4xx\"} 2\n"));
        assert!(text.contains("hypersock_websockets_open 2\n"));
    }
}

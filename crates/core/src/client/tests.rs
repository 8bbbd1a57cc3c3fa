//! Client tests over loopback against small raw-socket servers.

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpListener;

use super::*;

/// Serves each connection by calling `answer(request_head)` for every request on it.
async fn raw_server<F>(answer: F) -> String
where
    F: Fn(&str) -> String + Send + Sync + 'static,
{
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let answer = Arc::new(answer);
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let answer = answer.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(n) = tcp.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    while let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                        let head = String::from_utf8_lossy(&buf[..end]).into_owned();
                        buf.drain(..end + 4);
                        if tcp.write_all(answer(&head).as_bytes()).await.is_err() {
                            return;
                        }
                    }
                }
            });
        }
    });
    format!("http://127.0.0.1:{port}")
}

fn get(url: &str) -> ClientRequest {
    ClientRequest {
        method: "GET".into(),
        url: url.into(),
        ..Default::default()
    }
}

#[tokio::test]
async fn follows_relative_redirects_and_lists_hops() {
    let base = raw_server(|head| {
        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
        match path.as_str() {
            "/a" => "HTTP/1.1 302 Found\r\nlocation: /b\r\ncontent-length: 0\r\n\r\n".into(),
            "/b" => "HTTP/1.1 301 Moved\r\nlocation: c\r\ncontent-length: 0\r\n\r\n".into(),
            _ => format!(
                "HTTP/1.1 200 OK\r\ncontent-length: {}\r\n\r\n{path}",
                path.len()
            ),
        }
    })
    .await;
    let client = Client::new(ClientOptions::default()).expect("client");
    let res = client
        .request(get(&format!("{base}/a")))
        .await
        .expect("request");
    assert_eq!(res.head.status, 200);
    assert_eq!(&res.body[..], b"/c");
    assert_eq!(res.head.url, format!("{base}/c"));
    let hops: Vec<u16> = res.head.redirects.iter().map(|h| h.status).collect();
    assert_eq!(hops, vec![302, 301]);
    assert_eq!(client.pool_stats().opened, 1);
}

#[tokio::test]
async fn redirect_limits_and_loops_have_codes() {
    let base = raw_server(|head| {
        let path = head.split(' ').nth(1).unwrap_or("/").to_string();
        let n: u32 = path.trim_start_matches("/n").parse().unwrap_or(0);
        if path.starts_with("/loop") {
            "HTTP/1.1 302 Found\r\nlocation: /loop\r\ncontent-length: 0\r\n\r\n".into()
        } else {
            format!(
                "HTTP/1.1 302 Found\r\nlocation: /n{}\r\ncontent-length: 0\r\n\r\n",
                n + 1
            )
        }
    })
    .await;
    let client = Client::new(ClientOptions::default()).expect("client");
    let e = client
        .request(get(&format!("{base}/n0")))
        .await
        .expect_err("max");
    assert_eq!(e.code(), "ERR_TOO_MANY_REDIRECTS");
    let e = client
        .request(get(&format!("{base}/loop")))
        .await
        .expect_err("loop");
    assert_eq!(e.code(), "ERR_TOO_MANY_REDIRECTS");
}

#[tokio::test]
async fn retries_503_with_retry_after_and_reports_attempts() {
    let count = Arc::new(std::sync::atomic::AtomicU32::new(0));
    let c = count.clone();
    let base = raw_server(move |_| {
        if c.fetch_add(1, Ordering::SeqCst) < 2 {
            "HTTP/1.1 503 Busy\r\nretry-after: 0\r\ncontent-length: 0\r\n\r\n".into()
        } else {
            "HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok".into()
        }
    })
    .await;
    let client = Client::new(ClientOptions {
        retry: RetryPolicy {
            attempts: 3,
            ..RetryPolicy::default()
        },
        ..ClientOptions::default()
    })
    .expect("client");
    let res = client.request(get(&base)).await.expect("request");
    assert_eq!(res.head.status, 200);
    assert_eq!(res.head.attempts, 3);
    // POST is not idempotent: not retried.
    count.store(0, Ordering::SeqCst);
    let post = ClientRequest {
        method: "POST".into(),
        url: base.clone(),
        body: RequestBody::Bytes(Bytes::from_static(b"x")),
        ..Default::default()
    };
    let res = client.request(post).await.expect("post");
    assert_eq!(res.head.status, 503);
    assert_eq!(res.head.attempts, 1);
}

#[tokio::test]
async fn failures_after_retries_report_attempts() {
    // Every connection is closed before an answer: each attempt fails with ECONNRESET.
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        while let Ok((mut tcp, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let _ = tcp.read(&mut buf).await;
        }
    });
    let client = Client::new(ClientOptions {
        retry: RetryPolicy {
            attempts: 3,
            base_delay: Duration::from_millis(1),
            ..RetryPolicy::default()
        },
        ..ClientOptions::default()
    })
    .expect("client");
    let url = format!("http://127.0.0.1:{port}/");
    let e = client.send_counted(get(&url)).await.expect_err("closed");
    assert_eq!((e.error.code(), e.attempts), ("ECONNRESET", 3));
    let e = client
        .send_counted(get("http://[::1"))
        .await
        .expect_err("bad URL");
    assert_eq!((e.error.code(), e.attempts), ("ERR_INVALID_URL", 0));
}

#[tokio::test]
async fn headers_timeout_and_cancel_have_codes() {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let mut held = Vec::new();
        while let Ok((tcp, _)) = listener.accept().await {
            held.push(tcp);
        }
    });
    let url = format!("http://127.0.0.1:{port}/");
    let client = Client::new(ClientOptions {
        headers_timeout: Some(Duration::from_millis(100)),
        ..ClientOptions::default()
    })
    .expect("client");
    let e = client.request(get(&url)).await.expect_err("stalls");
    assert_eq!(e.code(), "ETIMEDOUT");
    assert_eq!(e.to_string(), "headers timed out");
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(50)).await;
        t.cancel();
    });
    let client = Client::new(ClientOptions::default()).expect("client");
    let e = client
        .request(ClientRequest {
            cancel: Some(token),
            ..get(&url)
        })
        .await
        .expect_err("cancelled");
    assert_eq!(e.code(), "ABORT_ERR");
}

#[tokio::test]
async fn decodes_gzip_bodies() {
    use std::io::Write;
    let mut gz = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    gz.write_all(b"squeezed").expect("gz");
    let data = gz.finish().expect("gz");
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        if let Ok((mut tcp, _)) = listener.accept().await {
            let mut buf = [0u8; 4096];
            let n = tcp.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_lowercase();
            assert!(head.contains("accept-encoding: gzip, deflate, br, zstd"));
            let reply = format!(
                "HTTP/1.1 200 OK\r\ncontent-encoding: gzip\r\ncontent-length: {}\r\n\r\n",
                data.len()
            );
            let _ = tcp.write_all(reply.as_bytes()).await;
            let _ = tcp.write_all(&data).await;
        }
    });
    let client = Client::new(ClientOptions::default()).expect("client");
    let res = client
        .request(get(&format!("http://127.0.0.1:{port}/")))
        .await
        .expect("request");
    assert_eq!(&res.body[..], b"squeezed");
    assert!(!res
        .head
        .headers
        .iter()
        .any(|(n, _)| n == "content-encoding"));
}

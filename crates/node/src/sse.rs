use std::time::Duration;

use hypersock_core::sse::{EventStream, EventStreamOptions, SseItem};
use napi::bindgen_prelude::*;
use napi_derive::napi;
use tokio::sync::Mutex;
use tokio_util::sync::CancellationToken;

use crate::client::BindingClient;
use crate::error::{OrThrow, Outcome};
use crate::wire::headers::pair_headers;

/// One item of an event stream: `open`, `message` (an event) or `reconnecting`.
#[napi(object)]
pub struct BindingSseItem {
    pub kind: String,
    pub event: String,
    pub data: String,
    pub id: String,
}

/// A Server-Sent Events connection that reconnects by itself; read with `next()`.
#[napi]
pub struct BindingEventSource {
    stream: Mutex<EventStream>,
    closer: CancellationToken,
}

#[napi]
impl BindingEventSource {
    #[napi(constructor)]
    #[allow(clippy::too_many_arguments)]
    pub fn new(
        env: &Env,
        client: &BindingClient,
        url: String,
        headers: Vec<String>,
        retry_ms: Option<u32>,
        max_reconnects: Option<u32>,
        last_event_id: Option<String>,
        max_event_size: Option<f64>,
    ) -> Result<Self> {
        let d = EventStreamOptions::default();
        let stream = EventStream::new(
            client.inner.clone(),
            url,
            EventStreamOptions {
                headers: pair_headers(headers).or_throw(env)?,
                retry: retry_ms.map_or(d.retry, |v| Duration::from_millis(u64::from(v))),
                max_reconnects,
                last_event_id: last_event_id.unwrap_or(d.last_event_id),
                max_event_size: max_event_size.map_or(d.max_event_size, |n| n as usize),
            },
        );
        let closer = stream.closer();
        Ok(BindingEventSource {
            stream: Mutex::new(stream),
            closer,
        })
    }

    /// The next items, or null once closed.
    #[napi(ts_return_type = "Promise<Array<BindingSseItem> | null>")]
    pub async fn next(&self) -> Outcome<Option<Vec<BindingSseItem>>> {
        let mut stream = self.stream.lock().await;
        stream.next().await.map(|items| items.map(sse_items)).into()
    }

    /// Closes the stream; a pending `next()` resolves to null.
    #[napi]
    pub fn close(&self) {
        self.closer.cancel();
    }
}

fn sse_items(items: Vec<SseItem>) -> Vec<BindingSseItem> {
    items
        .into_iter()
        .map(|item| match item {
            SseItem::Open => BindingSseItem {
                kind: "open".into(),
                event: String::new(),
                data: String::new(),
                id: String::new(),
            },
            SseItem::Event { event, data, id } => BindingSseItem {
                kind: "message".into(),
                event,
                data,
                id,
            },
            SseItem::Reconnecting { reason } => BindingSseItem {
                kind: "reconnecting".into(),
                event: String::new(),
                data: reason,
                id: String::new(),
            },
        })
        .collect()
}

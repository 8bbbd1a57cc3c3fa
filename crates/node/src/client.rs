use std::time::Duration;

use bytes::Bytes;
use hypersock_core::client::{Client, ClientOptions, ClientRequest};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::{flat_headers, pair_headers, to_js_error};

/// Options of `new BindingClient`, defaulted by the TS layer.
#[napi(object)]
pub struct BindingClientOptions {
    pub connect_timeout_ms: Option<u32>,
    pub timeout_ms: Option<u32>,
    pub pool_idle_timeout_ms: u32,
    pub pool_max_idle_per_host: u32,
    pub max_response_size: f64,
}

/// A response read in full.
#[napi(object)]
pub struct BindingResponse {
    pub status: u32,
    pub headers: Vec<String>,
    pub body: Buffer,
    pub url: String,
}

/// A pooled HTTP client.
#[napi]
pub struct BindingClient {
    inner: Client,
}

#[napi]
impl BindingClient {
    #[napi(constructor)]
    pub fn new(options: BindingClientOptions) -> Self {
        let ms = |v: u32| Duration::from_millis(u64::from(v));
        BindingClient {
            inner: Client::new(ClientOptions {
                connect_timeout: options.connect_timeout_ms.map(ms),
                timeout: options.timeout_ms.map(ms),
                pool_idle_timeout: ms(options.pool_idle_timeout_ms),
                pool_max_idle_per_host: options.pool_max_idle_per_host as usize,
                max_response_size: options.max_response_size as usize,
            }),
        }
    }

    /// Sends a request and reads the whole response.
    #[napi]
    pub async fn request(
        &self,
        method: String,
        url: String,
        headers: Vec<String>,
        body: Option<Uint8Array>,
    ) -> Result<BindingResponse> {
        let req = ClientRequest {
            method,
            url,
            headers: pair_headers(headers)?,
            body: body.map(|b| Bytes::copy_from_slice(&b)),
        };
        let client = self.inner.clone();
        let res = client.request(req).await.map_err(to_js_error)?;
        Ok(BindingResponse {
            status: u32::from(res.status),
            headers: flat_headers(res.headers.iter().map(|(n, v)| (n.as_str(), v))),
            body: Buffer::from(Vec::from(res.body)),
            url: res.url,
        })
    }
}

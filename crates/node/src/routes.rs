//! Route tables from JS: each route a pattern, an optional method, and one action (a handler
//! id, a fixed response, a file or a directory), validated by the TS layer.

use std::sync::Arc;

use bytes::Bytes;
use hypersock_core::server::files::{FileOptions, StaticDir, StaticFile};
use hypersock_core::server::{RouteAction, RouteSpec, Routes, StaticResponse};
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::error::{Fail, JsResult};
use crate::wire::headers::flat_to_header_map;

/// How a file or directory route serves files; what JS leaves out takes the engine's default.
#[napi(object)]
pub struct BindingFileOptions {
    pub precompressed: Option<bool>,
    /// The file served for a directory path; empty: none.
    pub index: Option<String>,
    pub cache_control: Option<String>,
    pub dotfiles: Option<bool>,
    pub listing: Option<bool>,
}

/// One route. Exactly one of `handler`, `body` (with `status` and `headers`), `file` and `dir`.
#[napi(object)]
pub struct BindingRoute {
    pub pattern: String,
    /// The method answered; absent: any.
    pub method: Option<String>,
    /// Hand matching requests to JS with this route id.
    pub handler: Option<u32>,
    /// Answer with this response from the I/O threads.
    pub status: Option<u32>,
    pub headers: Option<Vec<String>>,
    pub body: Option<Buffer>,
    /// Serve this file.
    pub file: Option<String>,
    /// Serve files under this directory.
    pub dir: Option<String>,
    pub files: Option<BindingFileOptions>,
}

fn file_options(o: Option<&BindingFileOptions>) -> FileOptions {
    let d = FileOptions::default();
    let Some(o) = o else { return d };
    FileOptions {
        precompressed: o.precompressed.unwrap_or(d.precompressed),
        index: match &o.index {
            Some(name) if name.is_empty() => None,
            Some(name) => Some(name.clone()),
            None => d.index,
        },
        cache_control: o.cache_control.clone().or(d.cache_control),
        dotfiles: o.dotfiles.unwrap_or(d.dotfiles),
        listing: o.listing.unwrap_or(d.listing),
    }
}

fn action(route: &BindingRoute) -> JsResult<RouteAction> {
    let files = || file_options(route.files.as_ref());
    Ok(
        match (&route.handler, &route.body, &route.file, &route.dir) {
            (Some(id), None, None, None) => RouteAction::Handler(*id),
            (None, Some(body), None, None) => {
                let headers = flat_to_header_map(route.headers.clone().unwrap_or_default())?;
                let status = route.status.unwrap_or(200).min(u32::from(u16::MAX)) as u16;
                let body = Bytes::copy_from_slice(body);
                RouteAction::Static(Arc::new(StaticResponse::new(status, headers, body)?))
            }
            (None, None, Some(path), None) => {
                RouteAction::File(Arc::new(StaticFile::new(path, files())?))
            }
            (None, None, None, Some(path)) => {
                RouteAction::Dir(Arc::new(StaticDir::new(path, files())?))
            }
            _ => {
                return Err(Fail::invalid_arg(format!(
                    "route {:?} needs exactly one action",
                    route.pattern
                )))
            }
        },
    )
}

/// Builds the engine's table from the routes JS gives.
pub(crate) fn routes_from(routes: &[BindingRoute]) -> JsResult<Routes> {
    let mut specs = Vec::with_capacity(routes.len());
    for route in routes {
        let method = match &route.method {
            Some(m) => Some(http::Method::from_bytes(m.as_bytes()).map_err(|_| {
                Fail::invalid_arg(format!("route {:?}: invalid method {m:?}", route.pattern))
            })?),
            None => None,
        };
        specs.push(RouteSpec {
            pattern: route.pattern.clone(),
            method,
            action: action(route)?,
        });
    }
    Ok(Routes::new(specs)?)
}

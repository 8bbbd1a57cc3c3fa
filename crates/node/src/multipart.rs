//! `multipart/form-data` bodies for `req.formData()`: the parse runs in the core
//! ([`hypersock_core::multipart`]); JS gets offsets and slices the body it already holds.

use hypersock_core::multipart::{self, Limits};
use hypersock_core::Error;
use napi::bindgen_prelude::*;
use napi_derive::napi;

use crate::error::{Fail, OrThrow};

/// One part: its name, filename and type, and where its content lies in the body.
#[napi(object)]
pub struct BindingPart {
    pub name: String,
    pub filename: Option<String>,
    pub content_type: Option<String>,
    pub start: u32,
    pub end: u32,
}

/// Parses a whole `multipart/form-data` body: at most `maxParts` parts, 16 KiB of headers each.
#[napi]
pub fn parse_multipart(
    env: &Env,
    body: &[u8],
    boundary: String,
    max_parts: u32,
) -> Result<Vec<BindingPart>> {
    if u32::try_from(body.len()).is_err() {
        return Err(Fail::invalid_arg("multipart/form-data body: larger than 4 GiB").throw(env));
    }
    let limits = Limits {
        max_parts: max_parts as usize,
        ..Limits::default()
    };
    let parts = multipart::parse_with_limits(body, &boundary, &limits)
        // The core says what is wrong with the body; that is the whole message for JS.
        .map_err(|e| match e {
            Error::InvalidArgument(what) => Fail::invalid_arg_message(what),
            other => Fail::from(other),
        })
        .or_throw(env)?;
    Ok(parts
        .into_iter()
        .map(|p| BindingPart {
            name: p.name,
            filename: p.filename,
            content_type: p.content_type,
            // Within the body, which fits in a u32 (checked above).
            start: p.body.start as u32,
            end: p.body.end as u32,
        })
        .collect())
}

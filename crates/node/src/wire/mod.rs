//! The formats in which work crosses between the I/O threads and JS, one file per format; the
//! TS side of each is named in its file (see ARCHITECTURE.md).

pub(crate) mod headers;
pub(crate) mod request;
pub(crate) mod ws_events;

//! Files served from disk by the I/O threads, without a round trip through the handler.
//!
//! A [`StaticDir`] serves the files under a directory, a [`StaticFile`] one file. Each request is
//! answered by [`serve_dir`] or [`serve_file`]: `GET` and `HEAD` only, with a content type from
//! the file name, `ETag` and `Last-Modified` validators, conditional requests (`304`), single
//! byte ranges (`206`, `416`) and precompressed `.br` / `.gz` siblings. The filesystem work of
//! one request (resolving the path, opening the file, reading it when it is small) runs as one
//! task on tokio's blocking pool, never on the I/O threads; larger files are then streamed in
//! 64 KiB chunks by [`ResBody::file`]. The whole answers of small files to plain `GET`s are kept
//! in memory for a second ([`CACHE_FRESH`]), so a busy file costs no filesystem call at all: a
//! file changed or removed on disk is seen within that second.
//!
//! Request paths never leave the root: a path is refused with `404` when any segment is `.` or
//! `..` (also percent-encoded), holds an encoded slash, a backslash, a `:` (drive letters), a NUL
//! or another control character, or is not UTF-8 once decoded, and when the path starts with a
//! slash or has an empty segment. The file finally opened is canonicalized and must lie under the
//! canonical root, so a symbolic link may point anywhere inside the root but not outside it.
//! Directories are never listed.

use std::fs;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::header::{self, HeaderMap, HeaderValue};
use http::{Method, StatusCode};

use super::ResBody;
use crate::error::{Error, Result};

/// Files (or ranges) up to this size are read whole on the blocking pool and sent as one chunk;
/// longer ones are streamed from the open file.
const INLINE_FILE_LIMIT: u64 = 64 * 1024;

/// The last second that `Last-Modified` can carry (the end of year 9999).
const LAST_HTTP_DATE: u64 = 253_402_300_799;

/// Options of a file or directory route.
#[derive(Debug, Clone)]
pub struct FileOptions {
    /// Serve the `x.br` / `x.gz` sibling of `x` when the client accepts that content coding
    /// (with `Content-Encoding` set and the content type of `x`). Default true.
    pub precompressed: bool,
    /// File served for a directory path (`"/docs/"` serves `"/docs/index.html"`). A plain file
    /// name. Default `Some("index.html")`.
    pub index: Option<String>,
    /// Value of `Cache-Control`, if any. Default `None`.
    pub cache_control: Option<String>,
    /// Serve dotfiles (names starting with `.`). Default false: they get `404`.
    pub dotfiles: bool,
    /// Answer a directory without the index file with an HTML listing of its entries (dotfiles
    /// only when `dotfiles`). Default false: `404`.
    pub listing: bool,
}

impl Default for FileOptions {
    fn default() -> Self {
        FileOptions {
            precompressed: true,
            index: Some("index.html".into()),
            cache_control: None,
            dotfiles: false,
            listing: false,
        }
    }
}

/// How long a cached small file is served from memory before the disk is asked again: a file
/// changed on disk is seen within this time.
const CACHE_FRESH: Duration = Duration::from_secs(1);
/// Most files a route keeps in memory (each at most [`INLINE_FILE_LIMIT`]: 16 MiB in all).
const CACHE_ENTRIES: usize = 256;

/// The whole `200` answers of a route's small files to plain `GET`s (no conditional or range
/// header), by path and accepted codings, so that a busy file is served from memory without a
/// trip to the blocking pool. An entry is used for [`CACHE_FRESH`] after it was read from disk.
#[derive(Debug, Default)]
struct SmallFiles {
    entries: std::sync::Mutex<std::collections::HashMap<(PathBuf, Vec<Encoding>), Cached>>,
}

#[derive(Debug, Clone)]
struct Cached {
    headers: HeaderMap,
    body: Bytes,
    read_at: Instant,
}

impl SmallFiles {
    fn get(&self, key: &(PathBuf, Vec<Encoding>)) -> Option<hyper::Response<ResBody>> {
        let entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        let hit = entries
            .get(key)
            .filter(|c| c.read_at.elapsed() < CACHE_FRESH)?;
        let mut res = hyper::Response::new(ResBody::full(hit.body.clone()));
        *res.headers_mut() = hit.headers.clone();
        Some(res)
    }

    fn put(&self, key: (PathBuf, Vec<Encoding>), answer: &Answer) {
        let Payload::Whole(body) = &answer.body else {
            return;
        };
        if answer.status != StatusCode::OK {
            return;
        }
        let mut entries = self.entries.lock().unwrap_or_else(|e| e.into_inner());
        if entries.len() >= CACHE_ENTRIES && !entries.contains_key(&key) {
            entries.retain(|_, c| c.read_at.elapsed() < CACHE_FRESH);
            if entries.len() >= CACHE_ENTRIES {
                entries.clear();
            }
        }
        entries.insert(
            key,
            Cached {
                headers: answer.headers.clone(),
                body: body.clone(),
                read_at: Instant::now(),
            },
        );
    }
}

/// What a route keeps of its [`FileOptions`], checked once at construction.
#[derive(Debug)]
struct Settings {
    options: FileOptions,
    cache_control: Option<HeaderValue>,
    small: SmallFiles,
}

impl Settings {
    fn new(options: FileOptions) -> Result<Arc<Settings>> {
        let cache_control = match &options.cache_control {
            Some(value) => Some(HeaderValue::from_str(value).map_err(|_| {
                Error::InvalidArgument(format!(
                    "cacheControl {value:?} is not a valid header value"
                ))
            })?),
            None => None,
        };
        if let Some(index) = &options.index {
            if index.is_empty()
                || index == "."
                || index == ".."
                || index.contains(['/', '\\', ':', '\0'])
            {
                return Err(Error::InvalidArgument(format!(
                    "index {index:?} must be a plain file name"
                )));
            }
        }
        Ok(Arc::new(Settings {
            options,
            cache_control,
            small: SmallFiles::default(),
        }))
    }
}

/// A directory served under a route prefix. The root is canonicalized at construction, which
/// touches the filesystem: build routes at setup time, not on the I/O threads.
#[derive(Debug, Clone)]
pub struct StaticDir {
    root: Arc<Path>,
    settings: Arc<Settings>,
}

impl StaticDir {
    /// Serves the files under `root`. Fails with [`Error::InvalidArgument`] when `root` does not
    /// exist or is not a directory, or when an option is not valid.
    pub fn new(root: impl AsRef<Path>, options: FileOptions) -> Result<StaticDir> {
        let given = root.as_ref();
        let root = fs::canonicalize(given).map_err(|e| {
            Error::InvalidArgument(format!("static directory {}: {e}", given.display()))
        })?;
        if !root.is_dir() {
            return Err(Error::InvalidArgument(format!(
                "static directory {} is not a directory",
                given.display()
            )));
        }
        Ok(StaticDir {
            root: root.into(),
            settings: Settings::new(options)?,
        })
    }

    /// The canonical root directory.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The options the directory was created with.
    pub fn options(&self) -> &FileOptions {
        &self.settings.options
    }
}

/// One file served at a route. The path is canonicalized at construction (touching the
/// filesystem, like [`StaticDir::new`]); its precompressed siblings are looked for next to the
/// canonical file and must lie in the same directory.
#[derive(Debug, Clone)]
pub struct StaticFile {
    path: Arc<Path>,
    dir: Arc<Path>,
    settings: Arc<Settings>,
}

impl StaticFile {
    /// Serves the file at `path`. Fails with [`Error::InvalidArgument`] when it does not exist
    /// or is not a regular file, or when an option is not valid.
    pub fn new(path: impl AsRef<Path>, options: FileOptions) -> Result<StaticFile> {
        let given = path.as_ref();
        let path = fs::canonicalize(given)
            .map_err(|e| Error::InvalidArgument(format!("static file {}: {e}", given.display())))?;
        if !path.is_file() {
            return Err(Error::InvalidArgument(format!(
                "static file {} is not a regular file",
                given.display()
            )));
        }
        let dir = path.parent().unwrap_or(Path::new("/")).into();
        Ok(StaticFile {
            path: path.into(),
            dir,
            settings: Settings::new(options)?,
        })
    }

    /// The canonical path of the file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The options the file was created with.
    pub fn options(&self) -> &FileOptions {
        &self.settings.options
    }
}

/// Answers a request for `tail` under the directory: `tail` is the still percent-encoded part
/// of the request path after the route prefix (no query string), e.g. `"css/site.css"` or
/// `"a%20b.txt"`. An empty tail or one ending in `/` asks for the directory's index file; a tail
/// naming a directory without the final slash is redirected (`308`, relative `Location`
/// `"name/"`) when that directory has the index file, and gets `404` otherwise.
pub async fn serve_dir(
    dir: &StaticDir,
    tail: &str,
    method: &Method,
    headers: &HeaderMap,
) -> hyper::Response<ResBody> {
    let Some(get) = is_get(method) else {
        return method_not_allowed();
    };
    let options = &dir.settings.options;
    let Some(segments) = decode_tail(tail, options.dotfiles) else {
        return not_found();
    };
    let mut path = dir.root.to_path_buf();
    path.extend(&segments);
    let mut listing = None;
    let (path, redirect) = if tail.is_empty() || tail.ends_with('/') {
        if options.listing {
            listing = Some((path.clone(), tail.to_string()));
        }
        match (&options.index, &listing) {
            (Some(index), _) => (path.join(index), None),
            // No index file to look for: the listing is the answer.
            (None, Some(_)) => (path, None),
            (None, None) => return not_found(),
        }
    } else {
        // The last segment as the client spelled it, so that the relative reference resolves
        // to the same path with a slash added.
        let last = tail.rsplit('/').next().unwrap_or(tail);
        (path, Some(format!("{last}/")))
    };
    let target = Target {
        root: dir.root.clone(),
        path,
        redirect,
        listing,
        settings: dir.settings.clone(),
        ask: Ask::new(get, headers, options.precompressed),
    };
    run(target).await
}

/// Answers a request for the file.
pub async fn serve_file(
    file: &StaticFile,
    method: &Method,
    headers: &HeaderMap,
) -> hyper::Response<ResBody> {
    let Some(get) = is_get(method) else {
        return method_not_allowed();
    };
    let target = Target {
        root: file.dir.clone(),
        path: file.path.to_path_buf(),
        redirect: None,
        listing: None,
        settings: file.settings.clone(),
        ask: Ask::new(get, headers, file.settings.options.precompressed),
    };
    run(target).await
}

/// `Some(true)` for `GET`, `Some(false)` for `HEAD`, `None` for the rest.
fn is_get(method: &Method) -> Option<bool> {
    if method == Method::GET {
        Some(true)
    } else if method == Method::HEAD {
        Some(false)
    } else {
        None
    }
}

/// The decoded segments of a request tail, or `None` when it must be refused. A trailing slash
/// is dropped (the caller looks at it); every other empty segment is refused.
pub(crate) fn decode_tail(tail: &str, dotfiles: bool) -> Option<Vec<String>> {
    if tail.starts_with('/') || tail.contains('\\') {
        return None;
    }
    let body = tail.strip_suffix('/').unwrap_or(tail);
    if body.is_empty() {
        return Some(Vec::new());
    }
    body.split('/')
        .map(|raw| {
            let bytes: Vec<u8> = percent_encoding::percent_decode_str(raw).collect();
            let segment = String::from_utf8(bytes).ok()?;
            let refused = segment.is_empty()
                || segment == "."
                || segment == ".."
                || (segment.starts_with('.') && !dotfiles)
                || segment
                    .chars()
                    .any(|c| c == '/' || c == '\\' || c == ':' || c.is_control());
            (!refused).then_some(segment)
        })
        .collect()
}

/// What the answer depends on in the request, copied out of the headers so that the whole
/// answer can be worked out on the blocking pool.
struct Ask {
    /// `GET` rather than `HEAD`.
    get: bool,
    /// The `If-None-Match` lines, if any.
    if_none_match: Option<Vec<HeaderValue>>,
    /// `If-Modified-Since`, when it is a valid date.
    if_modified_since: Option<SystemTime>,
    /// `Range` of a `GET` (one line; repeated lines are ignored).
    range: Option<HeaderValue>,
    /// `If-Range`.
    if_range: Option<HeaderValue>,
    /// Precompressed variants to look for, best first.
    encodings: Vec<Encoding>,
}

impl Ask {
    fn new(get: bool, headers: &HeaderMap, precompressed: bool) -> Ask {
        let if_none_match: Vec<HeaderValue> = headers
            .get_all(header::IF_NONE_MATCH)
            .iter()
            .cloned()
            .collect();
        let mut ranges = headers.get_all(header::RANGE).iter();
        let range = match (ranges.next(), ranges.next()) {
            (Some(range), None) if get => Some(range.clone()),
            _ => None,
        };
        let encodings = if precompressed && !headers.contains_key(header::RANGE) {
            accepted_encodings(headers)
        } else {
            Vec::new()
        };
        Ask {
            get,
            if_none_match: (!if_none_match.is_empty()).then_some(if_none_match),
            if_modified_since: headers
                .get(header::IF_MODIFIED_SINCE)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| httpdate::parse_http_date(v).ok()),
            range,
            if_range: headers.get(header::IF_RANGE).cloned(),
            encodings,
        }
    }
}

/// A precompressed variant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Encoding {
    Br,
    Gzip,
}

impl Encoding {
    fn extension(self) -> &'static str {
        match self {
            Encoding::Br => "br",
            Encoding::Gzip => "gz",
        }
    }

    fn header(self) -> HeaderValue {
        HeaderValue::from_static(match self {
            Encoding::Br => "br",
            Encoding::Gzip => "gzip",
        })
    }
}

/// The precompressed variants that `Accept-Encoding` accepts, best first: the higher q-value
/// wins, br before gzip on a tie. `q=0` refuses a coding, `*` stands for the codings not named,
/// `x-gzip` is gzip. Without the header no variant is used.
fn accepted_encodings(headers: &HeaderMap) -> Vec<Encoding> {
    let (mut br, mut gzip, mut any) = (None, None, None);
    for value in headers.get_all(header::ACCEPT_ENCODING) {
        let Ok(value) = value.to_str() else {
            continue;
        };
        for element in value.split(',') {
            let mut parts = element.split(';');
            let coding = parts.next().unwrap_or("").trim();
            let mut q = Some(1000);
            for param in parts {
                if let Some((name, v)) = param.split_once('=') {
                    if name.trim().eq_ignore_ascii_case("q") {
                        q = parse_q(v.trim());
                    }
                }
            }
            let Some(q) = q else {
                continue;
            };
            if coding.eq_ignore_ascii_case("br") {
                br = Some(q);
            } else if coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip") {
                gzip = Some(q);
            } else if coding == "*" {
                any = Some(q);
            }
        }
    }
    let br = br.or(any).unwrap_or(0);
    let gzip = gzip.or(any).unwrap_or(0);
    let mut out = Vec::with_capacity(2);
    if br > 0 && br >= gzip {
        out.push(Encoding::Br);
    }
    if gzip > 0 {
        out.push(Encoding::Gzip);
    }
    if br > 0 && br < gzip {
        out.push(Encoding::Br);
    }
    out
}

/// A q-value in thousandths (RFC 9110 section 12.4.2), `None` when malformed.
fn parse_q(value: &str) -> Option<u16> {
    let (int, frac) = value.split_once('.').unwrap_or((value, ""));
    if frac.len() > 3 || !frac.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let frac_value = frac
        .bytes()
        .chain(std::iter::repeat(b'0'))
        .take(3)
        .fold(0u16, |n, b| n * 10 + u16::from(b - b'0'));
    match int {
        "0" => Some(frac_value),
        "1" if frac_value == 0 => Some(1000),
        _ => None,
    }
}

/// One request's filesystem work, moved to the blocking pool.
struct Target {
    /// Canonical directory that the file (and its siblings) must lie under.
    root: Arc<Path>,
    /// The file asked for, not yet canonicalized.
    path: PathBuf,
    /// `Location` of the redirect when `path` turns out to be a directory.
    redirect: Option<String>,
    /// A directory to list when `path` (its index file) is not there, with the request's
    /// path tail for the listing's title.
    listing: Option<(PathBuf, String)>,
    settings: Arc<Settings>,
    ask: Ask,
}

/// A response worked out on the blocking pool.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Payload,
}

enum Payload {
    Empty,
    Text(&'static str),
    Whole(Bytes),
    File(fs::File, u64),
}

impl Answer {
    fn new(status: StatusCode, body: Payload) -> Answer {
        Answer {
            status,
            headers: HeaderMap::new(),
            body,
        }
    }

    fn text(status: StatusCode, text: &'static str) -> Answer {
        Answer::new(status, Payload::Text(text))
    }

    fn into_response(self) -> hyper::Response<ResBody> {
        let (body, text) = match self.body {
            Payload::Empty => (ResBody::empty(), false),
            Payload::Text(t) => (ResBody::full(Bytes::from_static(t.as_bytes())), true),
            Payload::Whole(b) => (ResBody::full(b), false),
            Payload::File(f, len) => (ResBody::file(tokio::fs::File::from_std(f), len), false),
        };
        let mut res = hyper::Response::new(body);
        *res.status_mut() = self.status;
        *res.headers_mut() = self.headers;
        if text {
            res.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; charset=utf-8"),
            );
        }
        res
    }
}

fn not_found() -> hyper::Response<ResBody> {
    Answer::text(StatusCode::NOT_FOUND, "not found\n").into_response()
}

fn method_not_allowed() -> hyper::Response<ResBody> {
    let mut answer = Answer::text(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    answer
        .headers
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    answer.into_response()
}

/// Works the answer out on the blocking pool, or takes a small file's from memory.
async fn run(target: Target) -> hyper::Response<ResBody> {
    let ask = &target.ask;
    let plain_get = ask.get
        && ask.if_none_match.is_none()
        && ask.if_modified_since.is_none()
        && ask.range.is_none();
    let key = plain_get.then(|| (target.path.clone(), ask.encodings.clone()));
    if let Some(key) = &key {
        if let Some(res) = target.settings.small.get(key) {
            return res;
        }
    }
    let settings = target.settings.clone();
    match tokio::task::spawn_blocking(move || answer(target)).await {
        Ok(answer) => {
            if let Some(key) = key {
                settings.small.put(key, &answer);
            }
            answer.into_response()
        }
        Err(_) => Answer::text(StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n")
            .into_response(),
    }
}

/// The answer for a failed filesystem call.
fn io_error(e: &io::Error) -> Answer {
    match e.kind() {
        io::ErrorKind::NotFound | io::ErrorKind::NotADirectory | io::ErrorKind::InvalidFilename => {
            Answer::text(StatusCode::NOT_FOUND, "not found\n")
        }
        io::ErrorKind::PermissionDenied => Answer::text(StatusCode::FORBIDDEN, "forbidden\n"),
        _ => Answer::text(StatusCode::INTERNAL_SERVER_ERROR, "internal server error\n"),
    }
}

/// Opens `path` (a path under `root`, as built from the request) only if it leads to something
/// under `root`: `Ok(None)` when it would leave the root (a `..` or a symbolic link pointing
/// outside). The check and the open are one step, so a link swapped in between them cannot
/// slip a file from outside through: on Linux the kernel resolves the path beneath the root
/// (`openat2` with `RESOLVE_BENEATH`); elsewhere the file is opened first and then must be the
/// very file (same device and inode) that the canonical path under the root names (a narrower
/// window: a race that swaps links three times in a row between the steps is not excluded
/// there). Opened non-blocking, so that a FIFO in the tree cannot hold a thread.
fn open_under(root: &Path, path: &Path) -> io::Result<Option<fs::File>> {
    #[cfg(target_os = "linux")]
    match open_beneath(root, path) {
        Err(e) if e.raw_os_error() == Some(rustix::io::Errno::NOSYS.raw_os_error()) => {}
        done => return done,
    }
    open_then_check(root, path)
}

/// `path` relative to `root` (`.` for the root itself); `None` when it is not under it.
#[cfg(target_os = "linux")]
fn relative<'a>(root: &Path, path: &'a Path) -> Option<&'a Path> {
    let rel = path.strip_prefix(root).ok()?;
    Some(if rel.as_os_str().is_empty() {
        Path::new(".")
    } else {
        rel
    })
}

/// `openat2(root, path relative to root, RESOLVE_BENEATH)`: the kernel refuses any step that
/// would leave the root (`EXDEV`), and a symbolic link loop is `ELOOP`; both are "not here".
#[cfg(target_os = "linux")]
fn open_beneath(root: &Path, path: &Path) -> io::Result<Option<fs::File>> {
    use rustix::fs::{open, openat2, Mode, OFlags, ResolveFlags};
    use rustix::io::Errno;
    let Some(rel) = relative(root, path) else {
        return Ok(None);
    };
    let dir = open(
        root,
        OFlags::PATH | OFlags::DIRECTORY | OFlags::CLOEXEC,
        Mode::empty(),
    )?;
    let flags = OFlags::RDONLY | OFlags::CLOEXEC | OFlags::NONBLOCK;
    match openat2(
        &dir,
        rel,
        flags,
        Mode::empty(),
        ResolveFlags::BENEATH | ResolveFlags::NO_MAGICLINKS,
    ) {
        Ok(fd) => Ok(Some(fs::File::from(fd))),
        Err(Errno::LOOP) => Ok(None),
        // An absolute symbolic link (which RESOLVE_BENEATH never follows) may still lead
        // inside the root: resolve the path, and open where it leads only if that is under the
        // root, through no symbolic link at all (one swapped in since is ELOOP).
        Err(Errno::XDEV) => {
            let canonical = match fs::canonicalize(path) {
                Ok(c) => c,
                Err(e) if e.raw_os_error() == LOOP_ERRNO => return Ok(None),
                Err(e) => return Err(e),
            };
            let Some(rel) = relative(root, &canonical) else {
                return Ok(None);
            };
            match openat2(
                &dir,
                rel,
                flags,
                Mode::empty(),
                ResolveFlags::BENEATH | ResolveFlags::NO_SYMLINKS,
            ) {
                Ok(fd) => Ok(Some(fs::File::from(fd))),
                Err(Errno::XDEV | Errno::LOOP) => Ok(None),
                Err(e) => Err(e.into()),
            }
        }
        Err(e) => Err(e.into()),
    }
}

/// The portable form of [`open_under`]: open, then check that the canonical path lies under the
/// root and names the same file as the one opened.
fn open_then_check(root: &Path, path: &Path) -> io::Result<Option<fs::File>> {
    let mut options = fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.custom_flags(NONBLOCK);
    }
    let file = match options.open(path) {
        Ok(file) => file,
        Err(e) if e.raw_os_error() == LOOP_ERRNO => return Ok(None),
        Err(e) => return Err(e),
    };
    let canonical = match fs::canonicalize(path) {
        Ok(c) => c,
        Err(e) if e.raw_os_error() == LOOP_ERRNO => return Ok(None),
        Err(e) => return Err(e),
    };
    if !canonical.starts_with(root) {
        return Ok(None);
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::MetadataExt;
        let opened = file.metadata()?;
        let named = fs::symlink_metadata(&canonical)?;
        if (opened.dev(), opened.ino()) != (named.dev(), named.ino()) {
            return Ok(None);
        }
    }
    Ok(Some(file))
}

#[cfg(unix)]
const NONBLOCK: i32 = libc::O_NONBLOCK;
#[cfg(unix)]
const LOOP_ERRNO: Option<i32> = Some(libc::ELOOP);
#[cfg(not(unix))]
const LOOP_ERRNO: Option<i32> = None;

/// The file at `path` under `root` when it is a regular file there.
fn regular_under(root: &Path, path: &Path) -> io::Result<Option<fs::File>> {
    match open_under(root, path)? {
        Some(file) if file.metadata()?.is_file() => Ok(Some(file)),
        _ => Ok(None),
    }
}

/// `path` with `.ext` appended to its file name.
fn with_extension_added(path: &Path, ext: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(ext);
    name.into()
}

fn answer(target: Target) -> Answer {
    let answer = match try_answer(&target) {
        Ok(answer) => answer,
        Err(e) => io_error(&e),
    };
    match &target.listing {
        // No index file (or none configured): list the directory instead.
        Some((dir, tail)) if answer.status == StatusCode::NOT_FOUND || *dir == target.path => {
            match list(&target.root, dir, tail, target.settings.options.dotfiles) {
                Ok(answer) => answer,
                Err(e) => io_error(&e),
            }
        }
        _ => answer,
    }
}

/// Most entries a listing shows.
const LISTING_MAX: usize = 10_000;

/// An HTML listing of the directory `dir` under `root` (opened under the same rules as a file).
fn list(root: &Path, dir: &Path, tail: &str, dotfiles: bool) -> io::Result<Answer> {
    let Some(opened) = open_under(root, dir)? else {
        return Ok(Answer::text(StatusCode::NOT_FOUND, "not found\n"));
    };
    if !opened.metadata()?.is_dir() {
        return Ok(Answer::text(StatusCode::NOT_FOUND, "not found\n"));
    }
    // (raw name, is a directory, size)
    let mut entries: Vec<(Vec<u8>, bool, u64)> = Vec::new();
    let mut more = 0usize;
    let mut take = |name: Vec<u8>, is_dir: bool, size: u64| {
        if name == b"." || name == b".." || (!dotfiles && name.first() == Some(&b'.')) {
            return;
        }
        if entries.len() < LISTING_MAX {
            entries.push((name, is_dir, size));
        } else {
            more += 1;
        }
    };
    #[cfg(unix)]
    {
        use rustix::fs::{statat, AtFlags, Dir, FileType};
        // The entries of the very directory opened, not of whatever the path names now.
        let mut entries_of = Dir::read_from(&opened)?;
        while let Some(entry) = entries_of.read() {
            let entry = entry?;
            let name = entry.file_name().to_bytes().to_vec();
            let (is_dir, size) = match statat(&opened, entry.file_name(), AtFlags::empty()) {
                Ok(st) => (
                    FileType::from_raw_mode(st.st_mode).is_dir(),
                    st.st_size.max(0) as u64,
                ),
                // A dangling link or a name gone since: shown as a plain entry.
                Err(_) => (false, 0),
            };
            take(name, is_dir, size);
        }
    }
    #[cfg(not(unix))]
    for entry in fs::read_dir(dir)? {
        let entry = entry?;
        let meta = entry.metadata().ok();
        let name = entry
            .file_name()
            .to_string_lossy()
            .into_owned()
            .into_bytes();
        take(
            name,
            meta.as_ref().is_some_and(|m| m.is_dir()),
            meta.map_or(0, |m| m.len()),
        );
    }
    entries.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    let title = html_escape(&String::from_utf8_lossy(&percent_decode(tail)));
    let mut html = format!(
        "<!doctype html>\n<meta charset=\"utf-8\">\n<title>Index of /{title}</title>\n<h1>Index of /{title}</h1>\n<ul>\n"
    );
    if !tail.is_empty() {
        html.push_str("<li><a href=\"../\">../</a></li>\n");
    }
    for (name, is_dir, size) in &entries {
        let slash = if *is_dir { "/" } else { "" };
        let href = percent_encode(name);
        let shown = html_escape(&String::from_utf8_lossy(name));
        let size = if *is_dir {
            String::new()
        } else {
            format!(" <small>{size} bytes</small>")
        };
        html.push_str(&format!(
            "<li><a href=\"./{href}{slash}\">{shown}{slash}</a>{size}</li>\n"
        ));
    }
    html.push_str("</ul>\n");
    if more > 0 {
        html.push_str(&format!("<p>{more} more entries not shown</p>\n"));
    }
    let mut answer = Answer::new(StatusCode::OK, Payload::Whole(Bytes::from(html)));
    answer.headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/html; charset=utf-8"),
    );
    answer
        .headers
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    Ok(answer)
}

/// `&`, `<`, `>`, `"` and `'` as HTML character references.
fn html_escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// A file name as one URL path segment: every byte but the unreserved ones percent-encoded.
fn percent_encode(name: &[u8]) -> String {
    let mut out = String::with_capacity(name.len());
    for &b in name {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Decodes `%XX` escapes (others are kept as they are).
fn percent_decode(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        let hex = |c: u8| (c as char).to_digit(16);
        if b[i] == b'%' && i + 2 < b.len() {
            if let (Some(h), Some(l)) = (hex(b[i + 1]), hex(b[i + 2])) {
                out.push((h * 16 + l) as u8);
                i += 3;
                continue;
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn try_answer(target: &Target) -> io::Result<Answer> {
    let Target {
        root,
        path,
        redirect,
        settings,
        ask,
        ..
    } = target;
    let Some(opened) = open_under(root, path)? else {
        return Ok(Answer::text(StatusCode::NOT_FOUND, "not found\n"));
    };
    let meta = opened.metadata()?;
    if meta.is_dir() {
        let has_index = match &settings.options.index {
            Some(index) => regular_under(root, &path.join(index))
                .ok()
                .flatten()
                .is_some(),
            None => false,
        };
        let listable = settings.options.listing;
        if let (true, Some(location)) = (has_index || listable, redirect) {
            if let Ok(location) = HeaderValue::from_str(location) {
                let mut answer = Answer::new(StatusCode::PERMANENT_REDIRECT, Payload::Empty);
                answer.headers.insert(header::LOCATION, location);
                return Ok(answer);
            }
        }
        return Ok(Answer::text(StatusCode::NOT_FOUND, "not found\n"));
    }
    if !meta.is_file() {
        return Ok(Answer::text(StatusCode::NOT_FOUND, "not found\n"));
    }

    // A precompressed sibling, when accepted and present (opened under the same rules).
    let mut chosen = None;
    for &encoding in &ask.encodings {
        let sibling = with_extension_added(path, encoding.extension());
        if let Ok(Some(file)) = regular_under(root, &sibling) {
            chosen = Some((encoding, file));
            break;
        }
    }
    let (encoding, mut file) = match chosen {
        Some((encoding, file)) => (Some(encoding), file),
        None => (None, opened),
    };
    let meta = file.metadata()?;
    if !meta.is_file() {
        return Ok(Answer::text(StatusCode::NOT_FOUND, "not found\n"));
    }

    let size = meta.len();
    let mtime = meta.modified().unwrap_or(UNIX_EPOCH);
    let since_epoch = mtime.duration_since(UNIX_EPOCH).unwrap_or_default();
    let mtime_secs = Some(since_epoch.as_secs()).filter(|&s| s <= LAST_HTTP_DATE);
    let etag = format!(
        "W/\"{size:x}-{:x}{}\"",
        since_epoch.as_nanos(),
        match encoding {
            Some(e) => ["-", e.extension()].concat(),
            None => String::new(),
        }
    );

    // The headers of a 304 (RFC 9110 section 15.4.5) ...
    let mut headers = HeaderMap::new();
    if let Ok(value) = HeaderValue::from_str(&etag) {
        headers.insert(header::ETAG, value);
    }
    if let Some(secs) = mtime_secs {
        let date = httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(secs));
        if let Ok(value) = HeaderValue::from_str(&date) {
            headers.insert(header::LAST_MODIFIED, value);
        }
    }
    if let Some(value) = &settings.cache_control {
        headers.insert(header::CACHE_CONTROL, value.clone());
    }
    if settings.options.precompressed {
        headers.insert(header::VARY, HeaderValue::from_static("Accept-Encoding"));
    }
    if not_modified(ask, &etag, mtime_secs) {
        let mut answer = Answer::new(StatusCode::NOT_MODIFIED, Payload::Empty);
        answer.headers = headers;
        return Ok(answer);
    }

    // ... and those of the content.
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(content_type(path)),
    );
    match encoding {
        Some(e) => {
            headers.insert(header::CONTENT_ENCODING, e.header());
        }
        None => {
            headers.insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
        }
    }
    let mut status = StatusCode::OK;
    let (mut start, mut len) = (0, size);
    if let (Some(range), None) = (&ask.range, encoding) {
        let applies = match &ask.if_range {
            Some(if_range) => if_range_matches(if_range, &etag, mtime_secs),
            None => true,
        };
        match parse_range(range.as_bytes(), size) {
            RangeAnswer::Part(first, last) if applies => {
                status = StatusCode::PARTIAL_CONTENT;
                (start, len) = (first, last - first + 1);
                if let Ok(value) = HeaderValue::from_str(&format!("bytes {first}-{last}/{size}")) {
                    headers.insert(header::CONTENT_RANGE, value);
                }
            }
            RangeAnswer::Unsatisfiable if applies => {
                let mut answer =
                    Answer::text(StatusCode::RANGE_NOT_SATISFIABLE, "range not satisfiable\n");
                answer
                    .headers
                    .insert(header::ACCEPT_RANGES, HeaderValue::from_static("bytes"));
                if let Ok(value) = HeaderValue::from_str(&format!("bytes */{size}")) {
                    answer.headers.insert(header::CONTENT_RANGE, value);
                }
                return Ok(answer);
            }
            _ => {}
        }
    }
    headers.insert(header::CONTENT_LENGTH, HeaderValue::from(len));

    let body = if !ask.get || len == 0 {
        Payload::Empty
    } else {
        if start > 0 {
            file.seek(SeekFrom::Start(start))?;
        }
        if len <= INLINE_FILE_LIMIT {
            let mut buf = Vec::with_capacity(len as usize);
            (&mut file).take(len).read_to_end(&mut buf)?;
            if buf.len() as u64 != len {
                // Cut short since the metadata was read.
                return Ok(Answer::text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "internal server error\n",
                ));
            }
            Payload::Whole(buf.into())
        } else {
            Payload::File(file, len)
        }
    };
    let mut answer = Answer::new(status, body);
    answer.headers = headers;
    Ok(answer)
}

/// True when the conditional headers ask for a `304`: `If-None-Match` lists the tag (weak
/// comparison) or is `*`; otherwise, without `If-None-Match`, `If-Modified-Since` is not older
/// than the modification time in whole seconds (RFC 9110 section 13.2.2).
fn not_modified(ask: &Ask, etag: &str, mtime_secs: Option<u64>) -> bool {
    if let Some(lines) = &ask.if_none_match {
        let ours = opaque_tag(etag);
        return lines
            .iter()
            .any(|line| etag_list_matches(line.as_bytes(), ours));
    }
    match (ask.if_modified_since, mtime_secs) {
        (Some(since), Some(secs)) => since
            .duration_since(UNIX_EPOCH)
            .is_ok_and(|since| secs <= since.as_secs()),
        _ => false,
    }
}

/// The quoted part of an entity tag, without `W/`.
fn opaque_tag(etag: &str) -> &str {
    etag.strip_prefix("W/").unwrap_or(etag)
}

/// True when a list of entity tags (or `*`) matches `ours` (the quoted part) by weak
/// comparison. A malformed list matches only through the tags before the fault.
fn etag_list_matches(list: &[u8], ours: &str) -> bool {
    let ours = ours.as_bytes();
    if list.trim_ascii() == b"*" {
        return true;
    }
    let mut rest = list;
    loop {
        rest = rest.trim_ascii_start();
        while let Some(after) = rest.strip_prefix(b",") {
            rest = after.trim_ascii_start();
        }
        if rest.is_empty() {
            return false;
        }
        let tag = rest.strip_prefix(b"W/").unwrap_or(rest);
        let Some(inner) = tag.strip_prefix(b"\"") else {
            return false;
        };
        let Some(end) = inner.iter().position(|&b| b == b'"') else {
            return false;
        };
        if &tag[..end + 2] == ours {
            return true;
        }
        rest = &inner[end + 1..];
    }
}

/// True when `If-Range` lets the range through: a strong entity tag equal to ours, or a date
/// equal to the modification time in whole seconds. If-Range compares entity tags strongly
/// (RFC 9110 section 13.1.5): a weak one on either side never matches, and the engine's file
/// tags are weak, so a client resuming by entity tag gets the whole file again and one resuming
/// by date gets the range.
fn if_range_matches(value: &HeaderValue, etag: &str, mtime_secs: Option<u64>) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    let value = value.trim();
    if value.starts_with('"') || value.starts_with("W/") {
        return !value.starts_with("W/") && !etag.starts_with("W/") && value == etag;
    }
    match (httpdate::parse_http_date(value), mtime_secs) {
        (Ok(date), Some(secs)) => date
            .duration_since(UNIX_EPOCH)
            .is_ok_and(|d| d.as_secs() == secs),
        _ => false,
    }
}

/// What a `Range` header asks of a representation.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum RangeAnswer {
    /// Invalid, of another unit, or several ranges: send the whole representation.
    Whole,
    /// No byte of the range exists: `416`.
    Unsatisfiable,
    /// First and last byte (inclusive).
    Part(u64, u64),
}

/// Reads a `Range` value (RFC 9110 section 14.1.2) against a representation of `size` bytes.
pub(crate) fn parse_range(value: &[u8], size: u64) -> RangeAnswer {
    let Ok(value) = std::str::from_utf8(value) else {
        return RangeAnswer::Whole;
    };
    let Some((unit, set)) = value.split_once('=') else {
        return RangeAnswer::Whole;
    };
    if !unit.trim().eq_ignore_ascii_case("bytes") {
        return RangeAnswer::Whole;
    }
    let mut specs = set.split(',').map(str::trim).filter(|s| !s.is_empty());
    let (Some(spec), None) = (specs.next(), specs.next()) else {
        return RangeAnswer::Whole;
    };
    let Some((first, last)) = spec.split_once('-') else {
        return RangeAnswer::Whole;
    };
    let (first, last) = (first.trim(), last.trim());
    if first.is_empty() {
        return match number(last) {
            None => RangeAnswer::Whole,
            Some(0) => RangeAnswer::Unsatisfiable,
            // A zero-length representation has no last bytes to send: send it whole.
            Some(_) if size == 0 => RangeAnswer::Whole,
            Some(n) => RangeAnswer::Part(size.saturating_sub(n), size - 1),
        };
    }
    let Some(first) = number(first) else {
        return RangeAnswer::Whole;
    };
    let last = if last.is_empty() {
        u64::MAX
    } else {
        match number(last) {
            Some(last) if last >= first => last,
            _ => return RangeAnswer::Whole,
        }
    };
    if first >= size {
        return RangeAnswer::Unsatisfiable;
    }
    RangeAnswer::Part(first, last.min(size - 1))
}

/// A decimal number, saturating at `u64::MAX`; `None` unless all digits.
fn number(s: &str) -> Option<u64> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some(s.bytes().fold(0u64, |n, b| {
        n.saturating_mul(10).saturating_add(u64::from(b - b'0'))
    }))
}

/// The `Content-Type` for a file name, by extension (ASCII case ignored).
fn content_type(path: &Path) -> &'static str {
    let ext = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or("")
        .to_ascii_lowercase();
    match ext.as_str() {
        "html" | "htm" => "text/html; charset=utf-8",
        "css" => "text/css; charset=utf-8",
        "js" | "mjs" => "text/javascript; charset=utf-8",
        "json" | "map" => "application/json; charset=utf-8",
        "txt" => "text/plain; charset=utf-8",
        "md" => "text/markdown; charset=utf-8",
        "csv" => "text/csv; charset=utf-8",
        "xml" => "application/xml; charset=utf-8",
        "svg" => "image/svg+xml",
        "png" => "image/png",
        "jpg" | "jpeg" => "image/jpeg",
        "gif" => "image/gif",
        "webp" => "image/webp",
        "avif" => "image/avif",
        "ico" => "image/x-icon",
        "wasm" => "application/wasm",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "ttf" => "font/ttf",
        "otf" => "font/otf",
        "pdf" => "application/pdf",
        "mp4" => "video/mp4",
        "webm" => "video/webm",
        "mp3" => "audio/mpeg",
        "wav" => "audio/wav",
        "ogg" => "audio/ogg",
        "zip" => "application/zip",
        "gz" => "application/gzip",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use http_body_util::BodyExt;

    struct Site {
        tmp: tempfile::TempDir,
        dir: StaticDir,
    }

    impl Site {
        /// A root `public/` with a few files, and `secret` next to it (outside the root).
        fn new(options: FileOptions) -> Site {
            let tmp = tempfile::tempdir().unwrap();
            let public = tmp.path().join("public");
            fs::create_dir_all(public.join("docs")).unwrap();
            fs::create_dir_all(public.join("empty")).unwrap();
            fs::create_dir_all(public.join("a")).unwrap();
            fs::create_dir_all(public.join(".git")).unwrap();
            fs::write(tmp.path().join("secret"), "top secret\n").unwrap();
            fs::write(public.join("index.html"), "<h1>home</h1>\n").unwrap();
            fs::write(public.join("docs/index.html"), "<h1>docs</h1>\n").unwrap();
            fs::write(public.join("hello.txt"), "0123456789abcdefghij").unwrap();
            fs::write(public.join("a/b.txt"), "in a\n").unwrap();
            fs::write(public.join("a b.txt"), "spaced\n").unwrap();
            fs::write(public.join(".env"), "KEY=1\n").unwrap();
            fs::write(public.join(".git/config"), "[core]\n").unwrap();
            fs::write(public.join("a/.hidden"), "hidden\n").unwrap();
            let dir = StaticDir::new(&public, options).unwrap();
            Site { tmp, dir }
        }

        fn public(&self) -> PathBuf {
            self.tmp.path().join("public")
        }

        fn write(&self, name: &str, data: impl AsRef<[u8]>) {
            fs::write(self.public().join(name), data).unwrap();
        }

        async fn get(&self, tail: &str, headers: &[(&str, &str)]) -> Got {
            self.request(Method::GET, tail, headers).await
        }

        async fn request(&self, method: Method, tail: &str, headers: &[(&str, &str)]) -> Got {
            let res = serve_dir(&self.dir, tail, &method, &header_map(headers)).await;
            Got::collect(res).await
        }
    }

    fn header_map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                header::HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    struct Got {
        status: StatusCode,
        headers: HeaderMap,
        body: Bytes,
    }

    impl Got {
        async fn collect(res: hyper::Response<ResBody>) -> Got {
            let (parts, body) = res.into_parts();
            let body = body.collect().await.unwrap().to_bytes();
            Got {
                status: parts.status,
                headers: parts.headers,
                body,
            }
        }

        fn header(&self, name: header::HeaderName) -> Option<&str> {
            self.headers.get(name).map(|v| v.to_str().unwrap())
        }

        fn assert_not_found(&self) {
            assert_eq!(self.status, StatusCode::NOT_FOUND);
            assert_eq!(&self.body[..], b"not found\n");
            assert_eq!(
                self.header(header::CONTENT_TYPE),
                Some("text/plain; charset=utf-8")
            );
        }
    }

    fn site() -> Site {
        Site::new(FileOptions::default())
    }

    #[tokio::test]
    async fn listing_shows_a_directory_without_its_index() {
        let site = Site::new(FileOptions {
            listing: true,
            ..FileOptions::default()
        });
        fs::write(site.public().join("a/<x> & \"y\".txt"), "odd\n").unwrap();
        fs::create_dir_all(site.public().join("a/sub")).unwrap();
        let got = site.get("a/", &[]).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(
            got.header(header::CONTENT_TYPE),
            Some("text/html; charset=utf-8")
        );
        let html = String::from_utf8(got.body.to_vec()).unwrap();
        // Escaped for HTML, percent-encoded in links, directories first, dotfiles hidden.
        assert!(html.contains("<title>Index of /a/</title>"), "{html}");
        assert!(html.contains(
            "<a href=\"./%3Cx%3E%20%26%20%22y%22.txt\">&lt;x&gt; &amp; &quot;y&quot;.txt</a>"
        ));
        assert!(html.contains("<a href=\"../\">../</a>"));
        let sub = html.find("./sub/").unwrap();
        let file = html.find("./b.txt").unwrap();
        assert!(sub < file, "{html}");
        assert!(html.contains("<small>5 bytes</small>"));
        assert!(!html.contains(".hidden"));
        // A directory with its index file serves that; without the slash, a redirect.
        assert_eq!(site.get("docs/", &[]).await.body, "<h1>docs</h1>\n");
        let moved = site.get("a", &[]).await;
        assert_eq!(moved.status, StatusCode::PERMANENT_REDIRECT);
        assert_eq!(moved.header(header::LOCATION), Some("a/"));
        // Without the option, still 404; a listing never leaves the root.
        Site::new(FileOptions::default())
            .get("a/", &[])
            .await
            .assert_not_found();
        #[cfg(unix)]
        {
            std::os::unix::fs::symlink(site.tmp.path(), site.public().join("out")).unwrap();
            site.get("out/", &[]).await.assert_not_found();
        }
    }

    #[tokio::test]
    async fn small_files_are_served_from_memory_for_a_second() {
        let site = site();
        site.write("c.txt", "one");
        assert_eq!(site.get("c.txt", &[]).await.body, "one");
        site.write("c.txt", "two!");
        // A plain GET within the second is answered from memory ...
        let cached = site.get("c.txt", &[]).await;
        assert_eq!(
            (cached.status, &cached.body[..]),
            (StatusCode::OK, &b"one"[..])
        );
        assert_eq!(cached.headers[header::CONTENT_LENGTH], "3");
        // ... a conditional or range request goes to the disk ...
        let fresh = site.get("c.txt", &[("if-none-match", "W/\"0-0\"")]).await;
        assert_eq!(fresh.body, "two!");
        let part = site.get("c.txt", &[("range", "bytes=0-1")]).await;
        assert_eq!(part.body, "tw");
        // ... and so does every request once the second is over.
        std::thread::sleep(CACHE_FRESH + Duration::from_millis(100));
        assert_eq!(site.get("c.txt", &[]).await.body, "two!");
        // A 404 is never kept.
        assert_eq!(site.get("new.txt", &[]).await.status, StatusCode::NOT_FOUND);
        site.write("new.txt", "here");
        assert_eq!(site.get("new.txt", &[]).await.body, "here");
    }

    #[tokio::test]
    async fn content_types_by_extension() {
        let site = site();
        for (name, expected) in [
            ("s.css", "text/css; charset=utf-8"),
            ("app.JS", "text/javascript; charset=utf-8"),
            ("m.mjs", "text/javascript; charset=utf-8"),
            ("d.json", "application/json; charset=utf-8"),
            ("p.htm", "text/html; charset=utf-8"),
            ("i.svg", "image/svg+xml"),
            ("w.wasm", "application/wasm"),
            ("f.woff2", "font/woff2"),
            ("x.gz", "application/gzip"),
            ("x.br", "application/octet-stream"),
            ("noext", "application/octet-stream"),
            ("odd.xyz", "application/octet-stream"),
        ] {
            site.write(name, "x");
            let got = site.get(name, &[]).await;
            assert_eq!(got.status, StatusCode::OK, "{name}");
            assert_eq!(got.header(header::CONTENT_TYPE), Some(expected), "{name}");
        }
        assert_eq!(
            content_type(Path::new("a.tar.GZ")),
            "application/gzip",
            "the last extension counts"
        );
    }

    #[tokio::test]
    async fn get_sends_the_file_and_its_validators() {
        let site = Site::new(FileOptions {
            cache_control: Some("public, max-age=60".into()),
            ..FileOptions::default()
        });
        let got = site.get("hello.txt", &[]).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(&got.body[..], b"0123456789abcdefghij");
        assert_eq!(got.header(header::CONTENT_LENGTH), Some("20"));
        assert_eq!(got.header(header::ACCEPT_RANGES), Some("bytes"));
        assert_eq!(
            got.header(header::CACHE_CONTROL),
            Some("public, max-age=60")
        );
        assert_eq!(got.header(header::VARY), Some("Accept-Encoding"));
        let meta = fs::metadata(site.public().join("hello.txt")).unwrap();
        let nanos = meta
            .modified()
            .unwrap()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_nanos();
        assert_eq!(
            got.header(header::ETAG).unwrap(),
            format!("W/\"14-{nanos:x}\"")
        );
        let modified = httpdate::parse_http_date(got.header(header::LAST_MODIFIED).unwrap());
        assert_eq!(
            modified.unwrap(),
            UNIX_EPOCH + std::time::Duration::from_secs((nanos / 1_000_000_000) as u64)
        );
        let spaced = site.get("a%20b.txt", &[]).await;
        assert_eq!(&spaced.body[..], b"spaced\n");
    }

    #[tokio::test]
    async fn head_has_the_get_headers_and_no_body() {
        let site = site();
        let get = site.get("hello.txt", &[]).await;
        let head = site.request(Method::HEAD, "hello.txt", &[]).await;
        assert_eq!(head.status, StatusCode::OK);
        assert!(head.body.is_empty());
        assert_eq!(head.headers, get.headers);
        assert_eq!(head.header(header::CONTENT_LENGTH), Some("20"));
        // HEAD ignores Range (RFC 9110 section 14.2).
        let ranged = site
            .request(Method::HEAD, "hello.txt", &[("range", "bytes=0-1")])
            .await;
        assert_eq!(ranged.status, StatusCode::OK);
        assert_eq!(ranged.header(header::CONTENT_LENGTH), Some("20"));
    }

    #[tokio::test]
    async fn post_gets_405() {
        let site = site();
        for method in [Method::POST, Method::PUT, Method::DELETE, Method::OPTIONS] {
            let got = site.request(method.clone(), "hello.txt", &[]).await;
            assert_eq!(got.status, StatusCode::METHOD_NOT_ALLOWED, "{method}");
            assert_eq!(got.header(header::ALLOW), Some("GET, HEAD"));
        }
        let file = StaticFile::new(site.public().join("hello.txt"), FileOptions::default());
        let res = serve_file(&file.unwrap(), &Method::POST, &HeaderMap::new()).await;
        assert_eq!(res.status(), StatusCode::METHOD_NOT_ALLOWED);
    }

    #[tokio::test]
    async fn missing_file_is_404() {
        let site = site();
        site.get("nope.txt", &[]).await.assert_not_found();
        site.get("nope/deeper.txt", &[]).await.assert_not_found();
        // A file used as a directory.
        site.get("hello.txt/x", &[]).await.assert_not_found();
        site.get("hello.txt/", &[]).await.assert_not_found();
    }

    #[test]
    fn io_errors_map_to_statuses() {
        let status = |kind| io_error(&io::Error::from(kind)).status;
        assert_eq!(status(io::ErrorKind::NotFound), StatusCode::NOT_FOUND);
        assert_eq!(
            status(io::ErrorKind::PermissionDenied),
            StatusCode::FORBIDDEN
        );
        assert_eq!(
            status(io::ErrorKind::Other),
            StatusCode::INTERNAL_SERVER_ERROR
        );
        let forbidden = io_error(&io::Error::from(io::ErrorKind::PermissionDenied));
        assert!(matches!(forbidden.body, Payload::Text("forbidden\n")));
    }

    #[tokio::test]
    async fn not_modified_by_etag() {
        let site = Site::new(FileOptions {
            cache_control: Some("no-cache".into()),
            ..FileOptions::default()
        });
        let etag = site.get("hello.txt", &[]).await.headers[header::ETAG].clone();
        let etag = etag.to_str().unwrap();
        let strong = etag.strip_prefix("W/").unwrap();
        for inm in [
            etag.to_string(),
            strong.to_string(),
            format!("\"other\", {etag}"),
            format!("\"a,b\" ,  {strong} "),
            "*".to_string(),
        ] {
            let got = site.get("hello.txt", &[("if-none-match", &inm)]).await;
            assert_eq!(got.status, StatusCode::NOT_MODIFIED, "{inm}");
            assert!(got.body.is_empty());
            assert_eq!(got.header(header::CONTENT_LENGTH), None);
            assert_eq!(got.header(header::ETAG), Some(etag));
            assert!(got.header(header::LAST_MODIFIED).is_some());
            assert_eq!(got.header(header::CACHE_CONTROL), Some("no-cache"));
            assert_eq!(got.header(header::VARY), Some("Accept-Encoding"));
        }
        // Across repeated header lines too.
        let got = site
            .get(
                "hello.txt",
                &[("if-none-match", "\"x\""), ("if-none-match", etag)],
            )
            .await;
        assert_eq!(got.status, StatusCode::NOT_MODIFIED);
    }

    #[tokio::test]
    async fn if_none_match_that_does_not_match_is_200() {
        let site = site();
        let future =
            httpdate::fmt_http_date(SystemTime::now() + std::time::Duration::from_secs(3600));
        for inm in ["\"nope\"", "W/\"nope\", \"also-not\"", "garbage", ""] {
            // If-Modified-Since is ignored when If-None-Match is present.
            let got = site
                .get(
                    "hello.txt",
                    &[("if-none-match", inm), ("if-modified-since", &future)],
                )
                .await;
            assert_eq!(got.status, StatusCode::OK, "{inm:?}");
            assert_eq!(&got.body[..], b"0123456789abcdefghij");
        }
    }

    #[tokio::test]
    async fn not_modified_by_date() {
        let site = site();
        let got = site.get("hello.txt", &[]).await;
        let last_modified = got.header(header::LAST_MODIFIED).unwrap();
        let same = site
            .get("hello.txt", &[("if-modified-since", last_modified)])
            .await;
        assert_eq!(same.status, StatusCode::NOT_MODIFIED);
        assert!(same.body.is_empty());
        assert_eq!(same.header(header::CONTENT_LENGTH), None);
        let later = httpdate::fmt_http_date(SystemTime::now() + std::time::Duration::from_secs(60));
        let got = site
            .get("hello.txt", &[("if-modified-since", &later)])
            .await;
        assert_eq!(got.status, StatusCode::NOT_MODIFIED);
        let earlier = httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(1000));
        let got = site
            .get("hello.txt", &[("if-modified-since", &earlier)])
            .await;
        assert_eq!(got.status, StatusCode::OK);
        let got = site
            .get("hello.txt", &[("if-modified-since", "yesterday")])
            .await;
        assert_eq!(got.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn ranges() {
        let site = site();
        let cases: &[(&str, &str, &str)] = &[
            ("bytes=2-5", "bytes 2-5/20", "2345"),
            ("bytes=15-", "bytes 15-19/20", "fghij"),
            ("bytes=-3", "bytes 17-19/20", "hij"),
            ("bytes=-100", "bytes 0-19/20", "0123456789abcdefghij"),
            ("bytes=18-1000", "bytes 18-19/20", "ij"),
            ("Bytes = 0-0", "bytes 0-0/20", "0"),
            ("bytes=0-1,", "bytes 0-1/20", "01"),
        ];
        for &(range, content_range, body) in cases {
            let got = site.get("hello.txt", &[("range", range)]).await;
            assert_eq!(got.status, StatusCode::PARTIAL_CONTENT, "{range}");
            assert_eq!(got.header(header::CONTENT_RANGE), Some(content_range));
            assert_eq!(
                got.header(header::CONTENT_LENGTH),
                Some(body.len().to_string().as_str())
            );
            assert_eq!(got.header(header::ACCEPT_RANGES), Some("bytes"));
            assert_eq!(got.body, body.as_bytes(), "{range}");
        }
    }

    #[tokio::test]
    async fn unsatisfiable_range_is_416() {
        let site = site();
        for range in [
            "bytes=20-",
            "bytes=25-30",
            "bytes=-0",
            "bytes=99999999999999999999999-",
        ] {
            let got = site.get("hello.txt", &[("range", range)]).await;
            assert_eq!(got.status, StatusCode::RANGE_NOT_SATISFIABLE, "{range}");
            assert_eq!(got.header(header::CONTENT_RANGE), Some("bytes */20"));
        }
        site.write("zero", "");
        let got = site.get("zero", &[("range", "bytes=0-")]).await;
        assert_eq!(got.status, StatusCode::RANGE_NOT_SATISFIABLE);
        assert_eq!(got.header(header::CONTENT_RANGE), Some("bytes */0"));
        // A suffix of an empty file: the (empty) whole.
        let got = site.get("zero", &[("range", "bytes=-5")]).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(got.header(header::CONTENT_LENGTH), Some("0"));
    }

    #[tokio::test]
    async fn invalid_range_is_ignored() {
        let site = site();
        for range in [
            "bytes=5-2",
            "bytes=a-b",
            "bytes=",
            "bytes=-",
            "bytes=1-2-3",
            "items=0-1",
            "0-1",
            "bytes=+1-2",
            "bytes=0x1-2",
        ] {
            let got = site.get("hello.txt", &[("range", range)]).await;
            assert_eq!(got.status, StatusCode::OK, "{range}");
            assert_eq!(got.header(header::CONTENT_RANGE), None);
            assert_eq!(&got.body[..], b"0123456789abcdefghij");
        }
        // Two Range lines.
        let got = site
            .get(
                "hello.txt",
                &[("range", "bytes=0-1"), ("range", "bytes=2-3")],
            )
            .await;
        assert_eq!(got.status, StatusCode::OK);
    }

    #[tokio::test]
    async fn multiple_ranges_get_the_whole_file() {
        let site = site();
        for range in ["bytes=0-1,5-6", "bytes=0-1, -2", "bytes=50-60,0-1"] {
            let got = site.get("hello.txt", &[("range", range)]).await;
            assert_eq!(got.status, StatusCode::OK, "{range}");
            assert_eq!(got.header(header::CONTENT_LENGTH), Some("20"));
            assert_eq!(&got.body[..], b"0123456789abcdefghij");
        }
    }

    #[tokio::test]
    async fn if_range() {
        let site = site();
        let whole = site.get("hello.txt", &[]).await;
        let etag = whole.header(header::ETAG).unwrap();
        let date = whole.header(header::LAST_MODIFIED).unwrap();
        let old = httpdate::fmt_http_date(UNIX_EPOCH + std::time::Duration::from_secs(1000));
        let strong = etag.strip_prefix("W/").unwrap();
        for (if_range, partial) in [
            // Weak tags never match in If-Range: ours is weak, so neither form of it does.
            (etag, false),
            (strong, false),
            (date, true),
            ("W/\"0-0\"", false),
            ("\"other\"", false),
            (old.as_str(), false),
            ("not a date", false),
        ] {
            let got = site
                .get(
                    "hello.txt",
                    &[("range", "bytes=0-1"), ("if-range", if_range)],
                )
                .await;
            if partial {
                assert_eq!(got.status, StatusCode::PARTIAL_CONTENT, "{if_range}");
                assert_eq!(&got.body[..], b"01");
            } else {
                assert_eq!(got.status, StatusCode::OK, "{if_range}");
                assert_eq!(&got.body[..], b"0123456789abcdefghij");
            }
        }
        // A failed If-Range does not turn an unsatisfiable range into 416 either.
        let got = site
            .get(
                "hello.txt",
                &[("range", "bytes=100-"), ("if-range", "\"other\"")],
            )
            .await;
        assert_eq!(got.status, StatusCode::OK);
    }

    fn precompressed_site() -> Site {
        let site = site();
        site.write("app.js", "plain");
        site.write("app.js.br", "brotli bytes");
        site.write("app.js.gz", "gzip bytes");
        site.write("only-gz.css", "plain css");
        site.write("only-gz.css.gz", "gzip css");
        site
    }

    #[tokio::test]
    async fn precompressed_br_preferred_over_gzip() {
        let site = precompressed_site();
        let plain = site.get("app.js", &[]).await;
        assert_eq!(&plain.body[..], b"plain");
        assert_eq!(plain.header(header::CONTENT_ENCODING), None);
        for accept in ["gzip, deflate, br", "br, gzip", "gzip;q=0.8, br;q=0.8", "*"] {
            let got = site.get("app.js", &[("accept-encoding", accept)]).await;
            assert_eq!(got.status, StatusCode::OK);
            assert_eq!(&got.body[..], b"brotli bytes", "{accept}");
            assert_eq!(got.header(header::CONTENT_ENCODING), Some("br"));
            assert_eq!(
                got.header(header::CONTENT_TYPE),
                Some("text/javascript; charset=utf-8")
            );
            assert_eq!(got.header(header::VARY), Some("Accept-Encoding"));
            assert_eq!(got.header(header::ACCEPT_RANGES), None);
            assert_eq!(got.header(header::CONTENT_LENGTH), Some("12"));
            let etag = got.header(header::ETAG).unwrap();
            assert!(
                etag.starts_with("W/\"c-") && etag.ends_with("-br\""),
                "{etag}"
            );
        }
        let gz = site.get("app.js", &[("accept-encoding", "gzip")]).await;
        assert_eq!(&gz.body[..], b"gzip bytes");
        assert_eq!(gz.header(header::CONTENT_ENCODING), Some("gzip"));
        assert!(gz.header(header::ETAG).unwrap().ends_with("-gz\""));
        // A higher q-value wins over the br preference.
        let gz = site
            .get("app.js", &[("accept-encoding", "gzip;q=1, br;q=0.5")])
            .await;
        assert_eq!(&gz.body[..], b"gzip bytes");
        // br accepted but absent: gzip.
        let got = site
            .get("only-gz.css", &[("accept-encoding", "br, gzip")])
            .await;
        assert_eq!(&got.body[..], b"gzip css");
        assert_eq!(
            got.header(header::CONTENT_TYPE),
            Some("text/css; charset=utf-8")
        );
        // The variant's own tag revalidates it.
        let etag = gz.header(header::ETAG).unwrap();
        let again = site
            .get(
                "app.js",
                &[("accept-encoding", "gzip"), ("if-none-match", etag)],
            )
            .await;
        assert_eq!(again.status, StatusCode::NOT_MODIFIED);
        let other = site
            .get(
                "app.js",
                &[("accept-encoding", "br"), ("if-none-match", etag)],
            )
            .await;
        assert_eq!(other.status, StatusCode::OK);
        // HEAD picks the same variant.
        let head = site
            .request(Method::HEAD, "app.js", &[("accept-encoding", "br")])
            .await;
        assert_eq!(head.header(header::CONTENT_ENCODING), Some("br"));
        assert_eq!(head.header(header::CONTENT_LENGTH), Some("12"));
    }

    #[tokio::test]
    async fn q_zero_refuses_an_encoding() {
        let site = precompressed_site();
        for (accept, expected) in [
            ("br;q=0, gzip", &b"gzip bytes"[..]),
            ("br;q=0.000, gzip;q=0.5", b"gzip bytes"),
            ("br;q=0, gzip;q=0", b"plain"),
            ("*;q=0.5, br;q=0", b"gzip bytes"),
            ("*;q=0", b"plain"),
            ("identity", b"plain"),
            ("", b"plain"),
            ("br;q=2", b"plain"),
            ("BR;Q=1", b"brotli bytes"),
            ("x-gzip", b"gzip bytes"),
        ] {
            let got = site.get("app.js", &[("accept-encoding", accept)]).await;
            assert_eq!(&got.body[..], expected, "{accept:?}");
        }
    }

    #[tokio::test]
    async fn range_disables_precompressed() {
        let site = precompressed_site();
        let got = site
            .get(
                "app.js",
                &[("accept-encoding", "br, gzip"), ("range", "bytes=1-3")],
            )
            .await;
        assert_eq!(got.status, StatusCode::PARTIAL_CONTENT);
        assert_eq!(&got.body[..], b"lai");
        assert_eq!(got.header(header::CONTENT_ENCODING), None);
        assert_eq!(got.header(header::CONTENT_RANGE), Some("bytes 1-3/5"));
        // Even a Range that is then ignored.
        let got = site
            .get(
                "app.js",
                &[("accept-encoding", "br"), ("range", "bytes=0-1,3-4")],
            )
            .await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(&got.body[..], b"plain");
    }

    #[tokio::test]
    async fn precompressed_off() {
        let site = Site::new(FileOptions {
            precompressed: false,
            ..FileOptions::default()
        });
        site.write("app.js", "plain");
        site.write("app.js.br", "brotli bytes");
        let got = site.get("app.js", &[("accept-encoding", "br")]).await;
        assert_eq!(&got.body[..], b"plain");
        assert_eq!(got.header(header::CONTENT_ENCODING), None);
        assert_eq!(got.header(header::VARY), None);
    }

    #[tokio::test]
    async fn index_files_and_directories() {
        let site = site();
        let got = site.get("", &[]).await;
        assert_eq!(&got.body[..], b"<h1>home</h1>\n");
        assert_eq!(
            got.header(header::CONTENT_TYPE),
            Some("text/html; charset=utf-8")
        );
        let got = site.get("docs/", &[]).await;
        assert_eq!(&got.body[..], b"<h1>docs</h1>\n");
        // A directory without its slash is redirected when it has an index ...
        let got = site.get("docs", &[]).await;
        assert_eq!(got.status, StatusCode::PERMANENT_REDIRECT);
        assert_eq!(got.header(header::LOCATION), Some("docs/"));
        assert!(got.body.is_empty());
        // ... and is 404 without one.
        site.get("empty", &[]).await.assert_not_found();
        site.get("empty/", &[]).await.assert_not_found();
        site.get("a/", &[]).await.assert_not_found();
        // No index configured: 404, never a listing.
        let bare = Site::new(FileOptions {
            index: None,
            ..FileOptions::default()
        });
        bare.get("", &[]).await.assert_not_found();
        bare.get("docs/", &[]).await.assert_not_found();
        bare.get("docs", &[]).await.assert_not_found();
        let other = Site::new(FileOptions {
            index: Some("home.txt".into()),
            ..FileOptions::default()
        });
        other.write("docs/home.txt", "home");
        assert_eq!(&other.get("docs/", &[]).await.body[..], b"home");
    }

    #[tokio::test]
    async fn traversal_with_dot_dot_segments() {
        let site = site();
        assert!(site.tmp.path().join("secret").exists());
        for tail in [
            "../secret",
            "a/../../secret",
            "a/../b.txt",
            "./hello.txt",
            "..",
            "docs/..",
        ] {
            site.get(tail, &[]).await.assert_not_found();
        }
    }

    #[tokio::test]
    async fn traversal_with_percent_encoded_dots() {
        let site = site();
        for tail in [
            "%2e%2e/secret",
            "%2E%2E/secret",
            "a/%2e%2e/%2e%2e/secret",
            ".%2e/secret",
            "%2e./secret",
            "%2e/hello.txt",
        ] {
            site.get(tail, &[]).await.assert_not_found();
        }
    }

    #[tokio::test]
    async fn traversal_with_encoded_slash() {
        let site = site();
        // a/b.txt exists, but an encoded slash refuses the request outright.
        assert_eq!(site.get("a/b.txt", &[]).await.status, StatusCode::OK);
        for tail in [
            "a%2fb.txt",
            "a%2Fb.txt",
            "..%2fsecret",
            "%2e%2e%2Fsecret",
            "docs%2f",
        ] {
            site.get(tail, &[]).await.assert_not_found();
        }
    }

    #[tokio::test]
    async fn traversal_with_backslashes() {
        let site = site();
        // Where a backslash is an ordinary character, a file by that name exists: the request is
        // refused for its spelling, not because nothing is there.
        #[cfg(unix)]
        site.write("a\\b.txt", "literal backslash");
        for tail in [
            "..\\secret",
            "a\\b.txt",
            "..%5csecret",
            "a%5Cb.txt",
            "%5c%5cserver",
        ] {
            site.get(tail, &[]).await.assert_not_found();
        }
    }

    #[tokio::test]
    async fn traversal_with_nul() {
        let site = site();
        for tail in [
            "hello.txt%00",
            "hello.txt%00.png",
            "%00",
            "a/%00/b.txt",
            "hello%0a.txt",
        ] {
            site.get(tail, &[]).await.assert_not_found();
        }
    }

    #[tokio::test]
    async fn traversal_with_absolute_paths() {
        let site = site();
        for tail in [
            "/etc/passwd",
            "//etc/passwd",
            "%2fetc%2fpasswd",
            "%2Fetc/passwd",
            "a//b.txt",
        ] {
            site.get(tail, &[]).await.assert_not_found();
        }
    }

    #[tokio::test]
    async fn traversal_with_drive_letters() {
        let site = site();
        // Where `:` is an ordinary character, these names exist.
        #[cfg(unix)]
        {
            fs::create_dir_all(site.public().join("C:/Windows")).unwrap();
            site.write("C:/Windows/win.ini", "[fonts]");
            site.write("C:/x", "x");
            site.write("hello.txt:stream", "stream");
        }
        for tail in [
            "C:/Windows/win.ini",
            "c:",
            "C:%5cWindows",
            "C%3a/x",
            "hello.txt:stream",
        ] {
            site.get(tail, &[]).await.assert_not_found();
        }
    }

    #[tokio::test]
    async fn invalid_utf8_is_404() {
        let site = site();
        site.get("%ff.txt", &[]).await.assert_not_found();
        site.get("%c3%28", &[]).await.assert_not_found();
        // Valid UTF-8 is fine.
        site.write("caf\u{e9}.txt", "coffee");
        assert_eq!(&site.get("caf%C3%A9.txt", &[]).await.body[..], b"coffee");
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn symlink_out_of_the_root_is_404() {
        let site = site();
        let secret = site.tmp.path().join("secret");
        std::os::unix::fs::symlink(&secret, site.public().join("leak")).unwrap();
        std::os::unix::fs::symlink(site.tmp.path(), site.public().join("up")).unwrap();
        site.get("leak", &[]).await.assert_not_found();
        site.get("up/secret", &[]).await.assert_not_found();
        // Nor is an outside precompressed sibling used.
        site.write("app.js", "plain");
        std::os::unix::fs::symlink(&secret, site.public().join("app.js.br")).unwrap();
        let got = site.get("app.js", &[("accept-encoding", "br")]).await;
        assert_eq!(&got.body[..], b"plain");
    }

    /// A link swapped between a file inside and one outside while requests run: no request
    /// ever gets the outside file (the check and the open are one step).
    #[cfg(unix)]
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_symlink_swapped_during_requests_never_leaks() {
        let site = site();
        let public = site.public();
        fs::create_dir_all(public.join("up")).unwrap();
        fs::write(public.join("up/plain"), "inside\n").unwrap();
        std::os::unix::fs::symlink("../../secret", public.join("up/evil")).unwrap();
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let swapper = {
            let (public, stop) = (public.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut swaps = 0u32;
                while !stop.load(std::sync::atomic::Ordering::Relaxed) && swaps < 2_000_000 {
                    // Atomically replace `race` with the file, then with the link out.
                    let _ = fs::hard_link(public.join("up/plain"), public.join("up/tmp"));
                    let _ = fs::rename(public.join("up/tmp"), public.join("up/race"));
                    let _ = std::os::unix::fs::symlink("../../secret", public.join("up/tmp2"));
                    let _ = fs::rename(public.join("up/tmp2"), public.join("up/race"));
                    swaps += 1;
                }
            })
        };
        let mut served = 0;
        for _ in 0..3000 {
            // A conditional request goes to the disk every time (no cache).
            let got = site.get("up/race", &[("if-none-match", "W/\"x\"")]).await;
            assert_ne!(
                &got.body[..],
                b"top secret\n",
                "the file outside the root leaked"
            );
            if got.status == StatusCode::OK {
                served += 1;
            }
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        swapper.join().unwrap();
        // The link itself is refused, and the file is served when it is there.
        assert_eq!(site.get("up/evil", &[]).await.status, StatusCode::NOT_FOUND);
        assert!(served > 0 || site.get("up/plain", &[]).await.status == StatusCode::OK);
    }

    #[cfg(unix)]
    #[test]
    fn the_portable_open_checks_where_the_file_is() {
        let site = site();
        let public = site.public();
        std::os::unix::fs::symlink("../secret", public.join("out")).unwrap();
        std::os::unix::fs::symlink("hello.txt", public.join("in")).unwrap();
        std::os::unix::fs::symlink("loop", public.join("loop")).unwrap();
        assert!(open_then_check(&public, &public.join("out"))
            .unwrap()
            .is_none());
        assert!(open_then_check(&public, &public.join("in"))
            .unwrap()
            .is_some());
        assert!(open_then_check(&public, &public.join("loop"))
            .unwrap()
            .is_none());
        assert!(open_under(&public, &public.join("loop")).unwrap().is_none());
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn a_symlink_loop_is_404() {
        let site = site();
        std::os::unix::fs::symlink("loop", site.public().join("loop")).unwrap();
        site.get("loop", &[]).await.assert_not_found();
    }

    #[cfg(unix)]
    #[tokio::test]
    async fn symlink_inside_the_root_is_served() {
        let site = site();
        std::os::unix::fs::symlink(
            site.public().join("hello.txt"),
            site.public().join("docs/link.txt"),
        )
        .unwrap();
        std::os::unix::fs::symlink("a", site.public().join("alias")).unwrap();
        let got = site.get("docs/link.txt", &[]).await;
        assert_eq!(got.status, StatusCode::OK);
        assert_eq!(&got.body[..], b"0123456789abcdefghij");
        assert_eq!(&site.get("alias/b.txt", &[]).await.body[..], b"in a\n");
    }

    #[tokio::test]
    async fn dotfiles() {
        let site = site();
        for tail in [".env", ".git/config", "a/.hidden", "%2eenv", ".git/"] {
            site.get(tail, &[]).await.assert_not_found();
        }
        let open = Site::new(FileOptions {
            dotfiles: true,
            ..FileOptions::default()
        });
        assert_eq!(&open.get(".env", &[]).await.body[..], b"KEY=1\n");
        assert_eq!(&open.get(".git/config", &[]).await.body[..], b"[core]\n");
        assert_eq!(&open.get("a/.hidden", &[]).await.body[..], b"hidden\n");
        open.get("../secret", &[]).await.assert_not_found();
        open.get("%2e%2e/secret", &[]).await.assert_not_found();
    }

    fn pattern(len: usize) -> Vec<u8> {
        (0..len)
            .map(|i| (i % 251) as u8 ^ (i >> 12) as u8)
            .collect()
    }

    /// The body and the size of each of its chunks (a whole body comes as one).
    async fn chunks(res: hyper::Response<ResBody>) -> (Vec<u8>, Vec<usize>) {
        let mut body = res.into_body();
        let (mut data, mut sizes) = (Vec::new(), Vec::new());
        while let Some(frame) = body.frame().await {
            let chunk = frame.unwrap().into_data().unwrap();
            sizes.push(chunk.len());
            data.extend_from_slice(&chunk);
        }
        assert!(hyper::body::Body::is_end_stream(&body));
        (data, sizes)
    }

    #[tokio::test]
    async fn large_file_goes_through_the_file_body() {
        let site = site();
        let data = pattern(300 * 1024);
        site.write("big.bin", &data);
        let res = serve_dir(&site.dir, "big.bin", &Method::GET, &HeaderMap::new()).await;
        assert_eq!(res.status(), StatusCode::OK);
        assert_eq!(res.headers()[header::CONTENT_LENGTH], "307200");
        assert_eq!(res.body().exact_len(), Some(307_200));
        assert_eq!(
            hyper::body::Body::size_hint(res.body()).exact(),
            Some(307_200)
        );
        let (got, sizes) = chunks(res).await;
        assert_eq!(sizes, [65536, 65536, 65536, 65536, 45056]);
        assert!(got[..] == data[..]);

        // A large range is streamed from its offset.
        let res = serve_dir(
            &site.dir,
            "big.bin",
            &Method::GET,
            &header_map(&[("range", "bytes=1000-200999")]),
        )
        .await;
        assert_eq!(res.status(), StatusCode::PARTIAL_CONTENT);
        let (got, sizes) = chunks(res).await;
        assert_eq!(sizes, [65536, 65536, 65536, 3392]);
        assert!(got[..] == data[1000..201_000]);
        // Other ranges of a large file, streamed or read whole.
        let got = site.get("big.bin", &[("range", "bytes=-70000")]).await;
        assert!(got.body[..] == data[data.len() - 70_000..]);
        let got = site
            .get("big.bin", &[("range", "bytes=100000-100009")])
            .await;
        assert!(got.body[..] == data[100_000..100_010]);
    }

    #[tokio::test]
    async fn truncated_file_fails_the_body() {
        let site = site();
        site.write("big.bin", pattern(300 * 1024));
        let file = StaticFile::new(site.public().join("big.bin"), FileOptions::default());
        let res = serve_file(&file.unwrap(), &Method::GET, &HeaderMap::new()).await;
        assert_eq!(res.headers()[header::CONTENT_LENGTH], "307200");
        fs::OpenOptions::new()
            .write(true)
            .open(site.public().join("big.bin"))
            .unwrap()
            .set_len(100 * 1024)
            .unwrap();
        let err = match res.into_body().collect().await {
            Ok(short) => panic!(
                "a short body must fail, got {} bytes",
                short.to_bytes().len()
            ),
            Err(e) => e,
        };
        assert_eq!(err.kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn empty_file_body_ends_at_once() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("f");
        fs::write(&path, "abc").unwrap();
        let file = tokio::fs::File::open(&path).await.unwrap();
        let body = ResBody::file(file, 0);
        assert!(hyper::body::Body::is_end_stream(&body));
        assert!(body.collect().await.unwrap().to_bytes().is_empty());
        let file = tokio::fs::File::open(&path).await.unwrap();
        let body = ResBody::file(file, 2);
        assert_eq!(&body.collect().await.unwrap().to_bytes()[..], b"ab");
    }

    #[tokio::test]
    async fn static_file() {
        let site = precompressed_site();
        let file = StaticFile::new(site.public().join("app.js"), FileOptions::default()).unwrap();
        let res = serve_file(&file, &Method::GET, &HeaderMap::new()).await;
        let got = Got::collect(res).await;
        assert_eq!(&got.body[..], b"plain");
        assert_eq!(
            got.header(header::CONTENT_TYPE),
            Some("text/javascript; charset=utf-8")
        );
        let etag = got.header(header::ETAG).unwrap();
        let res = serve_file(&file, &Method::GET, &header_map(&[("if-none-match", etag)])).await;
        assert_eq!(res.status(), StatusCode::NOT_MODIFIED);
        let res = serve_file(&file, &Method::GET, &header_map(&[("range", "bytes=-2")])).await;
        assert_eq!(&Got::collect(res).await.body[..], b"in");
        let res = serve_file(
            &file,
            &Method::GET,
            &header_map(&[("accept-encoding", "br")]),
        )
        .await;
        assert_eq!(&Got::collect(res).await.body[..], b"brotli bytes");
        let res = serve_file(&file, &Method::HEAD, &HeaderMap::new()).await;
        assert_eq!(res.headers()[header::CONTENT_LENGTH], "5");
        // Removed after the route was built: 404 from the disk (a plain GET may still be
        // answered from memory for a second).
        fs::remove_file(site.public().join("app.js")).unwrap();
        let ask_disk = header_map(&[("if-none-match", "W/\"other\"")]);
        let res = serve_file(&file, &Method::GET, &ask_disk).await;
        Got::collect(res).await.assert_not_found();
    }

    #[test]
    fn constructors_check_their_paths() {
        let tmp = tempfile::tempdir().unwrap();
        let file = tmp.path().join("f.txt");
        fs::write(&file, "x").unwrap();
        let missing = tmp.path().join("missing");
        for result in [
            StaticDir::new(&missing, FileOptions::default()).map(|_| ()),
            StaticDir::new(&file, FileOptions::default()).map(|_| ()),
            StaticFile::new(&missing, FileOptions::default()).map(|_| ()),
            StaticFile::new(tmp.path(), FileOptions::default()).map(|_| ()),
            StaticDir::new(
                tmp.path(),
                FileOptions {
                    index: Some("../x".into()),
                    ..FileOptions::default()
                },
            )
            .map(|_| ()),
            StaticDir::new(
                tmp.path(),
                FileOptions {
                    cache_control: Some("bad\nvalue".into()),
                    ..FileOptions::default()
                },
            )
            .map(|_| ()),
        ] {
            assert!(
                matches!(result, Err(Error::InvalidArgument(_))),
                "{result:?}"
            );
        }
        let dir = StaticDir::new(tmp.path(), FileOptions::default()).unwrap();
        assert_eq!(dir.root(), fs::canonicalize(tmp.path()).unwrap());
        let f = StaticFile::new(&file, FileOptions::default()).unwrap();
        assert_eq!(f.path(), fs::canonicalize(&file).unwrap());
    }

    #[test]
    fn accept_encoding_and_range_parsing() {
        let enc = |v: &str| accepted_encodings(&header_map(&[("accept-encoding", v)]));
        assert_eq!(enc("br, gzip"), [Encoding::Br, Encoding::Gzip]);
        assert_eq!(enc("gzip;q=0.9, br;q=0.1"), [Encoding::Gzip, Encoding::Br]);
        assert_eq!(enc("br;q=0"), []);
        assert_eq!(parse_q("0.5"), Some(500));
        assert_eq!(parse_q("1.000"), Some(1000));
        assert_eq!(parse_q("1.5"), None);
        assert_eq!(parse_q("0.1234"), None);
        assert_eq!(parse_range(b"bytes=0-0", 1), RangeAnswer::Part(0, 0));
        assert_eq!(parse_range(b"bytes=0-", 0), RangeAnswer::Unsatisfiable);
        assert_eq!(
            parse_range(b"bytes=0-99999999999999999999", 10),
            RangeAnswer::Part(0, 9)
        );
    }
}

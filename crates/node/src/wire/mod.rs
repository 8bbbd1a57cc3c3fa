//! The formats in which work crosses between the I/O threads and JS, one file per format; the
//! TS side of each is named in its file (see ARCHITECTURE.md).

pub(crate) mod headers;
pub(crate) mod request;
pub(crate) mod ws_events;

/// Compares `bytes` with the committed fixture `__test__/fixtures/wire/<name>` (hex), which the
/// TS tests decode too; `HYPERSOCK_WRITE_WIRE_FIXTURES=1` rewrites it after a deliberate change.
#[cfg(test)]
pub(crate) fn assert_fixture(name: &str, bytes: &[u8], ts_side: &str) {
    let path = format!(
        "{}/../../__test__/fixtures/wire/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    let encoded = bytes.iter().map(|b| format!("{b:02x}")).collect::<String>() + "\n";
    if std::env::var_os("HYPERSOCK_WRITE_WIRE_FIXTURES").is_some() {
        std::fs::write(&path, &encoded).unwrap();
    }
    let committed = std::fs::read_to_string(&path)
        .expect("the fixture (HYPERSOCK_WRITE_WIRE_FIXTURES=1 writes it)");
    assert_eq!(
        encoded, committed,
        "the layout of {name} changed: update {ts_side} and the fixture"
    );
}

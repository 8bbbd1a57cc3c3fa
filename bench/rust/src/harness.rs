//! What the benchmark servers share with the harness that spawns them.

use std::io::Read;

/// Exits the process once stdin is closed, i.e. when the parent that piped it goes away.
pub fn exit_on_stdin_eof() {
    std::thread::spawn(|| {
        let mut sink = [0u8; 256];
        let mut stdin = std::io::stdin();
        while matches!(stdin.read(&mut sink), Ok(n) if n > 0) {}
        std::process::exit(0);
    });
}

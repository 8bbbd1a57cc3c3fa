//! What the benchmark's servers and load generators share: ties to the harness that spawns them.

// Each binary includes this file and uses part of it.
#![allow(dead_code)]

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

/// Kills the process (exit code 2) if it is still running after `budget`, whatever is stuck:
/// a load generator must never hang the benchmark. `name` prefixes the message on stderr.
pub fn start_watchdog(name: &'static str, budget: std::time::Duration) {
    std::thread::spawn(move || {
        std::thread::sleep(budget);
        eprintln!("{name}: still running after {budget:?}; giving up");
        std::process::exit(2)
    });
}

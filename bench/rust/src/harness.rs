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

/// A TCP socket bound to local address `source` with the port left to `connect`
/// (`IP_BIND_ADDRESS_NO_PORT` on Linux). Binding with port 0 would pick a port that no other
/// socket of that address holds, whatever the destination, so a run's ports still in TIME_WAIT
/// would leave the next run (to another server port) too few; chosen at connect time, a port is
/// only unavailable for the same destination.
pub fn socket_from(
    source: std::net::IpAddr,
    to: std::net::SocketAddr,
) -> std::io::Result<tokio::net::TcpSocket> {
    let socket = if to.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    #[cfg(target_os = "linux")]
    {
        use std::os::fd::AsRawFd;
        let on: libc::c_int = 1;
        // SAFETY: a plain setsockopt on a socket this function owns, with an int option value.
        let rc = unsafe {
            libc::setsockopt(
                socket.as_raw_fd(),
                libc::IPPROTO_IP,
                libc::IP_BIND_ADDRESS_NO_PORT,
                (&on as *const libc::c_int).cast(),
                std::mem::size_of::<libc::c_int>() as libc::socklen_t,
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    socket.bind(std::net::SocketAddr::new(source, 0))?;
    Ok(socket)
}

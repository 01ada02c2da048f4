//! Readiness for a service manager (sd_notify's `READY=1`).

use std::path::Path;

/// Tells a service manager that the gateway is up (`READY=1` on
/// `$NOTIFY_SOCKET`, as sd_notify does); nothing without one.
pub fn notify_ready() {
    use std::os::{
        linux::net::SocketAddrExt as _,
        unix::net::{SocketAddr, UnixDatagram},
    };
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return;
    };
    let bytes = path.as_encoded_bytes();
    let addr = match bytes.strip_prefix(b"@") {
        Some(abs) => SocketAddr::from_abstract_name(abs),
        None => SocketAddr::from_pathname(Path::new(&path)),
    };
    let sent = addr.and_then(|a| UnixDatagram::unbound()?.send_to_addr(b"READY=1", &a));
    if let Err(e) = sent {
        log::warn!("notifying the service manager: {e}");
    }
}

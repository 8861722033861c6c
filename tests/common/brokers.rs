//! Shared with the load generator's tests: whether a broker answers, and names no other test
//! uses.

/// True when a broker answers on `addr`. Outside CI a test without its broker skips with a loud
/// line naming what it needs; in CI (`CI` set) the broker must be there, and this fails.
pub fn broker_available(what: &str, addr: &str) -> bool {
    let reachable = addr
        .parse::<std::net::SocketAddr>()
        .ok()
        .is_some_and(|a| std::net::TcpStream::connect_timeout(&a, std::time::Duration::from_secs(2)).is_ok());
    if !reachable {
        assert!(std::env::var_os("CI").is_none(), "{what} is not answering on {addr}; CI must start it");
        eprintln!("SKIPPED: this test needs {what} on {addr}, which is not answering");
    }
    reachable
}

/// A name no other test uses, so tests can share one broker.
pub fn unique(prefix: &str) -> String {
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let nanos = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).map_or(0, |d| d.subsec_nanos());
    format!("{prefix}.{}.{n}.{nanos}", std::process::id())
}

//! What the crate's tests share: scratch directories and local HTTP servers
//! standing in for the systems causeway talks to.

use std::net::SocketAddr;
use std::path::PathBuf;

/// A fresh, empty-named directory under the system's temp dir (not created:
/// the code under test creates what it needs).
pub(crate) fn scratch_dir(tag: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "causeway-exporter-{tag}-{}-{}",
        std::process::id(),
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos())
    ));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

/// Serves `app` on a free loopback port until the test ends.
pub(crate) async fn serve(app: axum::Router) -> SocketAddr {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    addr
}

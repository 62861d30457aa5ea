//! The process signals the long-running roles (`docaxis hub`, `docaxis node`) answer:
//! SIGTERM or Ctrl-C stops gracefully, SIGHUP re-reads trust anchors and CRLs, and SIGXFSZ
//! (a file outgrew the process's file-size limit) is survived: the write fails with `EFBIG`
//! like any full disk, the store refuses and later reopens, nothing acknowledged is lost.

use std::sync::Arc;

use net::live_trust::LiveTrust;

/// Completes on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot listen for SIGTERM; stop with Ctrl-C");
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// From now on, SIGHUP asks `trust` to read its files again at once.
pub(crate) fn reload_on_hangup(trust: Arc<LiveTrust>) {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::hangup()) {
            Ok(mut hup) => {
                tokio::spawn(async move {
                    while hup.recv().await.is_some() {
                        tracing::info!("SIGHUP: reloading trust anchors and CRLs");
                        trust.reload_soon();
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot listen for SIGHUP"),
        }
    }
    #[cfg(not(unix))]
    let _ = trust;
}

/// From now on, exceeding the file-size limit (`ulimit -f`) fails the write instead of killing
/// the process: the store then treats it as a full disk (refuse, report in health, reopen).
pub(crate) fn survive_file_size_limit() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::from_raw(libc::SIGXFSZ)) {
            Ok(mut xfsz) => {
                tokio::spawn(async move {
                    while xfsz.recv().await.is_some() {
                        tracing::error!(
                            "SIGXFSZ: a file reached the file-size limit; the write failed"
                        );
                    }
                });
            }
            Err(e) => tracing::warn!(error = %e, "cannot handle SIGXFSZ"),
        }
    }
}

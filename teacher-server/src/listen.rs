//! The accept loop: HTTP/1.1 connections served by hyper with a header-read timer, a cap on
//! open connections, and a shutdown deadline. `axum::serve` has neither a timer nor a
//! connection cap, so a client that never finishes its headers, or thousands that connect
//! and wait, would each hold a task and a buffer for ever.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::metrics::Metrics;

/// Connection-level limits.
#[derive(Debug, Clone, Copy)]
pub struct ConnLimits {
    /// Longest a client may take to send a request's headers; hyper restarts the same timer
    /// while a kept-alive connection waits for its next request, so it is the idle timeout too.
    pub header_timeout: Duration,
    /// Most connections open at once; one more is answered 503 and closed.
    pub max_connections: usize,
    /// Once shutdown starts, how long open connections may take to finish.
    pub shutdown_timeout: Duration,
}

/// How long a refused connection gets to send its request before the 503 is written.
const REFUSE_READ: Duration = Duration::from_millis(500);

/// Accepts and serves connections until `shutdown` resolves; then stops accepting, lets open
/// connections finish their requests for up to `limits.shutdown_timeout`, and closes the rest.
pub async fn serve_connections(
    listener: TcpListener,
    app: Router,
    limits: ConnLimits,
    metrics: Arc<Metrics>,
    shutdown: impl Future<Output = ()>,
) {
    let graceful = GracefulShutdown::new();
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    let mut conns = JoinSet::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => stream,
                Err(e) => {
                    // E.g. EMFILE: back off instead of spinning on the error.
                    tracing::warn!(error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        while conns.try_join_next().is_some() {}
        let Ok(permit) = slots.clone().try_acquire_owned() else {
            metrics.connections_refused.inc();
            conns.spawn(refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let mut builder = http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(limits.header_timeout)
            .keep_alive(true);
        let conn =
            builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(app.clone()));
        let conn = graceful.watch(conn);
        conns.spawn(async move {
            let _permit = permit;
            if let Err(e) = conn.await {
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::info!("every connection finished"),
        () = tokio::time::sleep(limits.shutdown_timeout) => tracing::warn!(
            open = conns.len(),
            "shutdown deadline of {:?} passed: closing the connections still open",
            limits.shutdown_timeout
        ),
    }
    conns.abort_all();
    while conns.join_next().await.is_some() {}
}

/// Answers a connection over the cap with 503 and `Retry-After`, then closes it. The request
/// is read first (briefly): closing on unread data would reset the connection and the client
/// would see a reset instead of the 503.
async fn refuse(mut stream: TcpStream) {
    let body = r#"{"error":{"code":"too_many_connections","message":"too many open connections; retry later"}}"#;
    let answer = format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{body}",
        body.len()
    );
    let mut buf = vec![0u8; 16 << 10];
    let mut seen = Vec::new();
    let _ = tokio::time::timeout(REFUSE_READ, async {
        while let Ok(n) = stream.read(&mut buf).await {
            if n == 0 {
                break;
            }
            seen.extend_from_slice(&buf[..n]);
            if seen.windows(4).any(|w| w == b"\r\n\r\n") || seen.len() > 64 << 10 {
                break;
            }
        }
    })
    .await;
    let _ = tokio::time::timeout(Duration::from_secs(2), async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
        // Drain what the client still sends (a body) so the close is not a reset.
        let _ = tokio::time::timeout(REFUSE_READ, async {
            while let Ok(n) = stream.read(&mut buf).await {
                if n == 0 {
                    break;
                }
            }
        })
        .await;
    })
    .await;
}

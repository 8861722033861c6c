//! The body of a streamed response, written by a session's task: framed bytes go to the body
//! through a channel of one chunk, so a client that does not read holds at most that chunk and
//! hyper's write buffer, and no client holds its task past `limits.write_timeout` or, once the
//! hub shuts down, past the bytes the body can take at once.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::Duration;

use axum::body::{Body, Bytes};
use tokio::sync::mpsc;

use crate::hub::Hub;

/// How long the last bytes of a stream may take to go out.
const CLOSING_WRITE_TIMEOUT: Duration = Duration::from_secs(1);

/// The client is gone, or took nothing for `write_timeout`.
#[derive(Debug)]
pub struct Gone;

/// The writing end of a streamed body.
pub struct BodyWriter {
    hub: Arc<Hub>,
    sender: mpsc::Sender<Bytes>,
    /// Framed bytes not yet handed to the body.
    pub out: Vec<u8>,
}

/// A body and the writer that feeds it.
pub fn channel(hub: &Arc<Hub>) -> (BodyWriter, Body) {
    let (sender, chunks) = mpsc::channel::<Bytes>(1);
    let body = Body::from_stream(futures_util::stream::unfold(chunks, |mut chunks| async move {
        let chunk = chunks.recv().await?;
        Some((Ok::<_, std::convert::Infallible>(chunk), chunks))
    }));
    (BodyWriter { hub: hub.clone(), sender, out: Vec::new() }, body)
}

impl BodyWriter {
    /// Hands the framed bytes to the body, waiting while the client reads, at most
    /// `write_timeout` without progress.
    pub async fn flush(&mut self) -> Result<(), Gone> {
        if self.out.is_empty() {
            return Ok(());
        }
        let chunk = Bytes::from(std::mem::take(&mut self.out));
        let write_timeout = self.hub.config.limits.write_timeout;
        // Biased: bytes the body can take at once go out even when the hub is shutting down.
        tokio::select! {
            biased;
            sent = self.sender.send(chunk) => sent.map_err(|_| Gone),
            () = tokio::time::sleep(write_timeout) => {
                self.hub.metrics.stalled_closes.fetch_add(1, Relaxed);
                Err(Gone)
            }
            // A client that does not read holds no one up past shutdown.
            () = self.hub.shutdown.cancelled() => Err(Gone),
        }
    }

    /// Resolves when the client has closed the stream.
    pub async fn closed(&self) {
        self.sender.closed().await
    }

    /// The last bytes framed, sent if the client takes them soon.
    pub async fn finish(mut self) {
        let last = Bytes::from(std::mem::take(&mut self.out));
        if !last.is_empty() {
            let _ = tokio::time::timeout(CLOSING_WRITE_TIMEOUT, self.sender.send(last)).await;
        }
    }
}

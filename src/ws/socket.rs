//! The TCP socket under one WebSocket session, shared by two writers: the session's task
//! (through tungstenite, for everything it sends) and the executions, which write `next` frames
//! straight through while the session has nothing queued (see `subhub_subscriptions::outbox`).
//!
//! Both write whole frames under one lock, and bytes the kernel does not take at once wait in
//! `pending`, in order, until the session flushes them; a write-through is refused while
//! anything waits there, so frames never interleave and never overtake each other.

use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{ready, Context, Poll};
use std::time::Duration;

use tokio::time::Instant;

use subhub_protocol::FramePrefix;
use subhub_subscriptions::{SharedPayload, WriteOutcome, WriteThrough};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// A pending or frame-building buffer grown past this is released once drained, so a burst does not leave every
/// connection holding its high-water mark.
const KEEP_PENDING_CAPACITY: usize = 4 * 1024;

/// The write side, shared by the session and the executions that deliver to it.
pub struct SocketWriter {
    stream: OwnedWriteHalf,
    /// Accepted bytes the kernel has not taken yet: always whole frames, in order.
    pending: Mutex<Vec<u8>>,
    /// The session's own writes wait (rather than pile up here) once this much is pending, and
    /// a write-through larger than this is queued instead (`limits.connection_buffer_bytes`).
    max_pending: usize,
    /// When the socket last took a byte, or when bytes began to wait for it.
    progress: Mutex<Instant>,
}

impl SocketWriter {
    fn pending(&self) -> MutexGuard<'_, Vec<u8>> {
        self.pending.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn progressed(&self) {
        *self.progress.lock().unwrap_or_else(PoisonError::into_inner) = Instant::now();
    }

    fn last_progress(&self) -> Instant {
        *self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Resolves once bytes have waited for the socket `timeout` long without it taking one: a
    /// client that stopped reading, or advertises a zero window, which TCP never times out.
    pub async fn stalled(&self, timeout: Duration) {
        loop {
            let since = self.last_progress();
            tokio::time::sleep_until(since + timeout).await;
            if self.last_progress() == since && !self.pending().is_empty() {
                return;
            }
        }
    }

    /// Writes what is pending until it is empty or the socket is full (the task is then woken
    /// when it becomes writable).
    fn drain(&self, pending: &mut Vec<u8>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while !pending.is_empty() {
            match self.stream.try_write(pending) {
                Ok(0) => return Poll::Ready(Err(io::ErrorKind::WriteZero.into())),
                Ok(n) => {
                    pending.drain(..n);
                    self.progressed();
                }
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {
                    ready!(self.stream.as_ref().poll_write_ready(cx))?;
                }
                Err(error) => return Poll::Ready(Err(error)),
            }
        }
        if pending.capacity() > KEEP_PENDING_CAPACITY {
            *pending = Vec::new();
        }
        Poll::Ready(Ok(()))
    }
}

impl WriteThrough for SocketWriter {
    fn write_nexts(&self, prefix: &FramePrefix, payloads: &[SharedPayload]) -> WriteOutcome {
        FRAMES.with_borrow_mut(|frames| {
            frames.clear();
            for payload in payloads {
                prefix.push_ws_frame(frames, payload);
            }
            let outcome = self.write_whole_frames(frames);
            if frames.capacity() > KEEP_PENDING_CAPACITY {
                *frames = Vec::new();
            }
            outcome
        })
    }
}

impl SocketWriter {
    /// Writes control frames (a keepalive) unless earlier bytes still wait to go out; true if
    /// the kernel took them (the rest of a part taken waits for the session's next flush).
    pub fn write_control(&self, frames: &[u8]) -> bool {
        self.write_whole_frames(frames) != WriteOutcome::Refused
    }

    /// Writes whole frames straight into the socket, unless earlier bytes still wait to go out;
    /// the rest of frames the kernel took in part waits in `pending` for the session's flush.
    fn write_whole_frames(&self, frames: &[u8]) -> WriteOutcome {
        let mut pending = self.pending();
        // What the kernel does not take waits in `pending`: never more than its bound.
        if !pending.is_empty() || frames.len() > self.max_pending {
            return WriteOutcome::Refused;
        }
        match self.stream.try_write(frames) {
            Ok(n) if n == frames.len() => WriteOutcome::Written,
            Ok(0) => WriteOutcome::Refused,
            Ok(n) => {
                pending.extend_from_slice(&frames[n..]);
                self.progressed();
                WriteOutcome::Started
            }
            // A broken socket is the session's to find: queued, the message meets the error there.
            Err(_) => WriteOutcome::Refused,
        }
    }
}

thread_local! {
    /// Where a write-through builds its frames: one buffer per thread, reused for every
    /// subscriber, so fanning out allocates nothing.
    static FRAMES: std::cell::RefCell<Vec<u8>> = const { std::cell::RefCell::new(Vec::new()) };
}

/// The session's view of the socket, for tungstenite: reads go to the stream, writes go
/// through the shared [`SocketWriter`].
pub struct SessionSocket {
    /// tokio's own read half: a short read tells it the socket is drained, which saves a
    /// read that would only say "would block" after every message.
    read: OwnedReadHalf,
    writer: Arc<SocketWriter>,
}

impl SessionSocket {
    /// Shares `stream`; the session's own writes wait once `max_pending` bytes are pending.
    pub fn new(stream: TcpStream, max_pending: usize) -> Self {
        let (read, write) = stream.into_split();
        let writer = Arc::new(SocketWriter {
            stream: write,
            pending: Mutex::default(),
            max_pending,
            progress: Mutex::new(Instant::now()),
        });
        SessionSocket { read, writer }
    }

    pub fn writer(&self) -> Arc<SocketWriter> {
        self.writer.clone()
    }

    /// A lingering close, as nginx does it: once the close frame is out, the hub stops writing
    /// (FIN) and reads and discards whatever the client still sends, until it closes its side or
    /// `idle` passes without a byte or `limit` passes in all. Closing the socket with unread
    /// bytes would make the kernel answer with a reset, and a reset destroys the close frame
    /// still unread on the client's side: a client sending a frame over the limit would see
    /// 1006 instead of 1009.
    pub async fn linger(&mut self, idle: Duration, limit: Duration) {
        if !self.writer.pending().is_empty() {
            // The close frame itself did not go out: nothing to protect.
            return;
        }
        let stream: &TcpStream = self.writer.stream.as_ref();
        if socket2::SockRef::from(stream).shutdown(std::net::Shutdown::Write).is_err() {
            return;
        }
        let mut discard = [0u8; 4096];
        let drain = async {
            loop {
                match tokio::time::timeout(idle, self.read.read(&mut discard)).await {
                    Ok(Ok(n)) if n > 0 => {}
                    _ => return,
                }
            }
        };
        let _ = tokio::time::timeout(limit, drain).await;
    }
}

impl AsyncRead for SessionSocket {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.get_mut().read).poll_read(cx, buf)
    }
}

impl AsyncWrite for SessionSocket {
    /// Takes the whole buffer (tungstenite hands over whole frames), unless the writer already
    /// holds `max_pending` bytes: then it waits for the socket to drain.
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        let writer = &self.writer;
        let mut pending = writer.pending();
        if !pending.is_empty() && pending.len() + buf.len() > writer.max_pending {
            ready!(writer.drain(&mut pending, cx))?;
        }
        if pending.is_empty() {
            // Bytes start waiting now: a stall is measured from here.
            writer.progressed();
            match writer.stream.try_write(buf) {
                Ok(n) => pending.extend_from_slice(&buf[n..]),
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => pending.extend_from_slice(buf),
                Err(error) => return Poll::Ready(Err(error)),
            }
        } else {
            pending.extend_from_slice(buf);
        }
        Poll::Ready(Ok(buf.len()))
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let writer = &self.writer;
        let mut pending = writer.pending();
        writer.drain(&mut pending, cx)
    }

    /// Flushes; the connection itself closes when the writer, the last handle on the stream, is
    /// dropped.
    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        self.poll_flush(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use subhub_protocol::Protocol;
    use tokio::io::AsyncWriteExt;

    /// A session socket on a real loopback connection whose client reads nothing until told,
    /// through a small receive buffer.
    async fn pair(max_pending: usize) -> (SessionSocket, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let client = tokio::net::TcpSocket::new_v4().expect("socket");
        client.set_recv_buffer_size(4096).expect("rcvbuf");
        let client = client.connect(listener.local_addr().expect("addr")).await.expect("connect");
        let (server, _) = listener.accept().await.expect("accept");
        socket2::SockRef::from(&server).set_send_buffer_size(4096).expect("sndbuf");
        (SessionSocket::new(server, max_pending), client)
    }

    fn payload(bytes: usize) -> SharedPayload {
        "x".repeat(bytes).into()
    }

    /// Writes through until the kernel stops taking whole frames; returns the outcomes.
    fn fill(writer: &SocketWriter, prefix: &FramePrefix) -> Vec<WriteOutcome> {
        let mut outcomes = Vec::new();
        for _ in 0..10_000 {
            let outcome = writer.write_nexts(prefix, &[payload(1000)]);
            outcomes.push(outcome);
            if outcome != WriteOutcome::Written {
                break;
            }
        }
        outcomes
    }

    #[tokio::test]
    async fn a_partial_write_holds_the_rest_and_refuses_more_until_flushed() {
        let (mut socket, mut client) = pair(64 * 1024).await;
        let writer = socket.writer();
        let prefix = FramePrefix::new(Protocol::TransportWs, "1");
        let outcomes = fill(&writer, &prefix);
        let last = *outcomes.last().expect("outcomes");
        if last == WriteOutcome::Started {
            assert!(!writer.pending().is_empty(), "the rest of the frame waits");
            assert_eq!(writer.write_nexts(&prefix, &[payload(10)]), WriteOutcome::Refused, "frames never interleave");
            assert!(!writer.write_control(&[0x89, 0x00]), "a ping waits behind the pending bytes");
        }
        // The client reads; the session's flush sends what waited, and whole frames go through again.
        let reading = tokio::spawn(async move {
            let mut sink = vec![0u8; 64 * 1024];
            let mut total = 0usize;
            loop {
                match tokio::time::timeout(Duration::from_millis(500), client.read(&mut sink)).await {
                    Ok(Ok(n)) if n > 0 => total += n,
                    _ => return total,
                }
            }
        });
        socket.flush().await.expect("flush");
        assert!(writer.pending().is_empty());
        // Once the client has read enough for the kernel to take a frame again.
        let mut written = false;
        for _ in 0..500 {
            if writer.write_nexts(&prefix, &[payload(10)]) == WriteOutcome::Written {
                written = true;
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(written, "whole frames go through again");
        let frames = outcomes.len() - usize::from(last == WriteOutcome::Refused);
        let total = reading.await.expect("join");
        assert!(total >= frames * 1000 + 10, "read {total} bytes of {frames} frames and one more");
    }

    #[tokio::test]
    async fn no_write_through_parks_more_than_the_bound() {
        let (socket, _client) = pair(16 * 1024).await;
        let writer = socket.writer();
        let prefix = FramePrefix::new(Protocol::TransportWs, "1");
        // 64 results of 1 KB: more than the bound in one write, so they are queued instead.
        let results: Vec<SharedPayload> = (0..64).map(|_| payload(1000)).collect();
        assert_eq!(writer.write_nexts(&prefix, &results), WriteOutcome::Refused);
        assert!(writer.pending().is_empty());
        // Within the bound, whatever the kernel leaves waits, at most the bound.
        fill(&writer, &prefix);
        assert!(writer.pending().len() <= 16 * 1024, "{} bytes pending", writer.pending().len());
    }

    #[tokio::test(start_paused = true)]
    async fn bytes_the_client_never_takes_are_a_stall_after_the_timeout() {
        let (mut socket, _client) = pair(1 << 20).await;
        let writer = socket.writer();
        // The session's own writes: accepted into `pending` when the kernel is full.
        let frame = vec![0x81u8; 512 * 1024];
        socket.write_all(&frame).await.expect("accepted");
        assert!(!writer.pending().is_empty(), "the kernel took half a megabyte into a 4 KB window");
        let started = Instant::now();
        writer.stalled(Duration::from_secs(30)).await;
        assert!(started.elapsed() >= Duration::from_secs(30));
    }
}

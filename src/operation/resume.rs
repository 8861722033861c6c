//! A resumed subscription (DESIGN §12): the client joined the live shared execution at once,
//! its results held; once the execution is live, the broker's history after its cursor is
//! replayed through the same selection, then what was held follows, without what the replay
//! already sent. The first result says whether nothing was missed (`extensions.recovered`).

use std::collections::HashSet;
use std::sync::Arc;

use futures_util::stream::BoxStream;
use futures_util::StreamExt;
use subhub_protocol::OperationPayload;
use subhub_subscriptions::{Attachment, Outbox};

use super::shared::Replayed;
use crate::hub::Hub;

/// How often a replay waiting for room in its client's queue looks again.
const ROOM_WAIT: std::time::Duration = std::time::Duration::from_millis(5);

/// The cursor a subscribe payload resumes from: `extensions.resume`.
pub fn resume_cursor(payload: &OperationPayload) -> Option<String> {
    let resume = payload.extensions.as_ref()?.get("resume")?;
    resume.as_str().filter(|cursor| !cursor.is_empty() && cursor.len() <= 1024).map(str::to_owned)
}

/// Runs one client's replay, then releases its held results.
pub fn run(
    hub: Arc<Hub>,
    attachment: &Attachment,
    outbox: Arc<Outbox>,
    mut replay: BoxStream<'static, Replayed>,
) -> impl std::future::Future<Output = ()> + Send + 'static {
    let (live, slot) = (attachment.live(), attachment.slot().clone());
    async move {
        // Events from here on reach the held results; the replay reads up to at least here.
        let live = live.await;
        let (mut sent, mut sent_any, mut recovered) = (HashSet::new(), false, live);
        // A turn among `limits.max_replays`; the client's live results stay held meanwhile.
        // The replay is not polled before it: until then it has run nothing, read no history
        // and holds no results.
        let turn = hub.replays.acquire().await;
        if live && turn.is_ok() {
            while let Some(step) = replay.next().await {
                match step {
                    Replayed::Next(payload) => {
                        // A client slower than its replay makes the replay wait: nothing it
                        // replays is dropped for want of room.
                        while !outbox.has_room() {
                            if !slot.is_active() {
                                return;
                            }
                            tokio::time::sleep(ROOM_WAIT).await;
                        }
                        hub.metrics.replayed.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if let Some(id) = payload.event() {
                            sent.insert(id.to_owned());
                        }
                        let first = !std::mem::replace(&mut sent_any, true);
                        outbox.push_replayed(&slot, if first { payload.marked_recovered(true) } else { payload });
                    }
                    Replayed::Lost => {
                        recovered = false;
                        break;
                    }
                }
            }
        }
        hub.metrics.resumed(recovered && live);
        outbox.release(&slot, sent, recovered, sent_any);
    }
}

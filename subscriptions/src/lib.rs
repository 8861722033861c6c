//! # subhub-subscriptions
//!
//! The registry that keeps the hub's promise: every source is opened once, shared by every
//! subscriber that needs it and closed when the last one leaves; every event is executed once
//! per distinct operation and fanned out as shared bytes into bounded per-connection queues.
//!
//! Teardown is driven by ownership, not by the next event failing to send: a [`SourceLease`]
//! and an [`Attachment`] undo themselves when dropped, so a quiet source still closes when its
//! last subscriber leaves, politely or by dropping its socket.
//!
//! ## Layout
//! - [`registry`]: one source per key, whatever its [`Origin`] (broker topics, upstream
//!   operations): refcounted by [`Lease`]s, opened once on a task of its own, `linger`.
//! - [`sources`]: broker topics as sources: their checks and limits.
//! - [`forwarded`]: upstream operations as sources.
//! - [`executions`]: one shared execution per [`OperationKey`], its subscribers' [`Attachment`]s.
//! - [`hold`]: a resumed subscription's live results, held while its replay runs.
//! - [`payload`]: the shared bytes of one result, with its event's cursor.
//! - [`outbox`]: the bounded per-connection queue and its slow-consumer policy.
//! - [`metrics`]: every family the hub exports, as one list that `/metrics`, the dashboard and
//!   exporters read.

pub mod executions;
pub mod forwarded;
pub mod hold;
pub mod metrics;
pub mod outbox;
pub mod payload;
pub mod registry;
pub mod sources;

pub use executions::{
    Attachment, ExecutionItem, ExecutionStream, ExecutionView, Executions, OperationKey, SourceRef, TooManyExecutions,
};
pub use forwarded::{ForwardedKey, ForwardedLease, ForwardedRefusal, ForwardedSources};
pub use metrics::{Arrival, Delivery, Lookups, Metrics, Reading, Refusal, Transport, UpstreamNumbers};
pub use outbox::{Outbound, Outbox, OutboxConfig, SharedPayload, Slot, SlowConsumerPolicy, WriteOutcome, WriteThrough};
pub use registry::{AcquireError, Capacity, Lease, Origin, Registry};
pub use sources::{BrokerTopics, SourceError, SourceLease, SourceLimits, Sources, TopicKey};

/// Locks a std mutex, going on with the data if a panicking thread poisoned it: every critical
/// section in this crate leaves its data consistent before anything can panic.
pub(crate) fn lock<T>(mutex: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

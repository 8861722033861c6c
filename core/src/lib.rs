//! # subhub-core
//!
//! The vocabulary several of subhub's crates share, so that none imports another for it. Today:
//! how a session with a broker or an upstream server is kept up. Nothing here knows a broker
//! client, a web framework or GraphQL: the broker sessions (subhub-brokers) and the upstream
//! client (subhub-upstream-ws) both build on it, and neither depends on the other.
//!
//! ## Layout
//! - [`backoff`]: [`Backoff`], jittered exponential delays between attempts, checked when made.
//! - [`heartbeat`]: [`Heartbeat`], a connection's liveness deadline: a probe every interval,
//!   answered within it, or the connection is taken for lost.
//! - [`session`]: [`run`], the reconnect loop of every [`Session`]: connect under a deadline,
//!   serve until a named [`SessionEnd`], wait out the backoff while still taking requests, and
//!   start the backoff again only after a session that stayed up.

pub mod backoff;
pub mod heartbeat;
pub mod session;

pub use backoff::{Backoff, InvalidBackoff};
pub use heartbeat::{Heartbeat, Silent};
pub use session::{run, ConnectError, Reconnect, Session, SessionEnd, Stopped};

//! How long an event takes through the hub: from its arrival to the write of its result to the
//! last subscriber of an execution (`subhub_delivery_seconds`), once per event per execution
//! whatever its number of subscribers.
//!
//! The clock rides in the result's shared bytes ([`crate::SharedPayload`]): each subscriber's
//! queue holds a reference until its writer has framed the result for the socket (written it
//! through, or drained and written it), and the execution holds one until it has handed the
//! result to every subscriber. The last reference to go is the last write, and dropping it
//! stops the clock: nothing is counted per subscriber. A result a slow consumer's queue drops
//! counts as done when it is dropped.
//!
//! An [`Arrival`] holds the publish timestamp beside the arrival instant, so a histogram of
//! publish-to-delivery time is one more [`Histogram`] in [`Clocks`] and one more observation in
//! [`Delivery`]'s drop, where `published` is known.

use std::sync::Arc;
use std::time::{Instant, SystemTime};

use subhub_brokers::Event;

use super::handle::Histogram;

/// Upper bounds of the latency histograms, in seconds: 100 µs to a minute.
pub const LATENCY_BUCKETS: [f64; 18] =
    [0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0];

/// The histograms an event's delivery is observed into.
#[derive(Debug)]
pub(super) struct Clocks {
    pub(super) delivery: Histogram,
}

/// When an event reached the hub, and when it was published where the broker or the publisher
/// says so.
#[derive(Clone, Copy, Debug)]
pub struct Arrival {
    /// When the hub read it from its source.
    pub at: Instant,
    /// Its publish timestamp (the broker's or the publisher's), where it has one.
    pub published: Option<SystemTime>,
}

impl Arrival {
    /// A broker event's: read when it was made, published at its timestamp.
    pub fn of(event: &Event) -> Self {
        Arrival { at: event.arrived, published: Some(event.timestamp) }
    }

    /// Something arriving now with no publish time of its own (an upstream's result).
    pub fn now() -> Self {
        Arrival { at: Instant::now(), published: None }
    }
}

/// One event's result on its way to an execution's subscribers; observed when dropped.
#[derive(Debug)]
pub struct Delivery {
    arrival: Arrival,
    clocks: Arc<Clocks>,
}

impl Delivery {
    pub(super) fn new(arrival: Arrival, clocks: Arc<Clocks>) -> Self {
        Delivery { arrival, clocks }
    }

    pub fn arrival(&self) -> Arrival {
        self.arrival
    }
}

impl Drop for Delivery {
    fn drop(&mut self) {
        self.clocks.delivery.observe(self.arrival.at.elapsed().as_secs_f64());
    }
}

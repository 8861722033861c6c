//! # subhub-brokers
//!
//! The broker boundary: how the hub opens a *source* on a broker topic, receives its events and
//! publishes into it. Each broker kind is one module with its config, its implementation and its
//! tests; a plain `#[serde(tag = "kind")]` enum selects among them.
//!
//! A source is opened with [`Broker::subscribe`], which returns only once the broker delivers
//! the topic's events into the given [`EventSink`] ("live"), and closes when the returned
//! [`SourceGuard`] is dropped. The hub's registry makes sure each (broker, topic) is subscribed
//! at most once at a time.
//!
//! ## Layout
//! - [`broker`]: the [`Broker`] trait, [`Publish`] and [`PublishAck`], [`BrokerError`].
//! - [`event`]: [`Event`], one message read from a broker, its body decoded once.
//! - [`sink`]: [`EventSink`], where a broker delivers a source's events, and [`BrokerStats`].
//! - [`config`]: [`BrokerConfig`] and [`Brokers`], the configured brokers by name, built with a
//!   [`BuildContext`] (the hub's limits).
//! - [`session`]: requests to a broker's session task, subscriptions confirmed once live, and
//!   what every session on the shared reconnect loop ([`subhub_core::session`]) keeps.
//! - [`memory`]: the embedded in-process broker.
//! - [`redis`]: Redis pub/sub and streams.
//! - [`amqp`]: RabbitMQ (AMQP 0-9-1) topic exchanges.
//! - [`kafka`]: Kafka, one consumer per hub instance, topics assigned as they are needed.
//! - [`nats`]: NATS subjects, core or read through JetStream ordered consumers.
//! - [`mqtt`]: MQTT topics, one client per hub instance.

pub mod amqp;
pub mod broker;
pub mod config;
pub mod event;
pub mod kafka;
pub mod memory;
pub mod mqtt;
pub mod nats;
pub mod redis;
pub mod session;
pub mod sink;

pub use broker::{Broker, BrokerError, History, Publish, PublishAck, SourceGuard};
pub use config::{BrokerConfig, Brokers, BuildContext};
pub use event::Event;
pub use sink::{BrokerStats, EventSink};

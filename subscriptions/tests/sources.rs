//! Broker topics in the registry, on the embedded memory broker: the registry's rules hold for
//! real sources, on tokio's paused clock so that timings are exact.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use subhub_brokers::memory::MemoryConfig;
use subhub_brokers::{BrokerConfig, Brokers, Publish};
use subhub_subscriptions::{Metrics, SourceLimits, Sources};

async fn sources(limits: SourceLimits) -> Arc<Sources> {
    let configs = BTreeMap::from([("local".to_owned(), BrokerConfig::Memory(MemoryConfig::default()))]);
    let brokers = Arc::new(Brokers::build(&configs, "local", &Default::default()).await.expect("memory broker"));
    Sources::new(brokers, limits, Arc::new(Metrics::default()))
}

fn open_on_broker(sources: &Sources) -> i64 {
    let broker = sources.brokers().get(None).expect("local");
    broker.stats().sources_open.load(std::sync::atomic::Ordering::SeqCst)
}

#[tokio::test(start_paused = true)]
async fn a_source_left_rejoined_and_left_again_lingers_from_the_second_leave() {
    let sources = sources(SourceLimits { linger: Duration::from_secs(1), ..SourceLimits::default() }).await;
    drop(sources.acquire(None, "t").await.expect("acquire"));
    tokio::time::sleep(Duration::from_millis(600)).await;
    drop(sources.acquire(None, "t").await.expect("rejoin"));
    // The first leave's linger is over; the second's has 400 ms to go.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!((sources.len(), open_on_broker(&sources)), (1, 1), "closed 400 ms early");
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!((sources.len(), open_on_broker(&sources)), (0, 0));
}

#[tokio::test]
async fn events_reach_every_lease_of_one_source_and_closing_counts_down() {
    let sources = sources(SourceLimits::default()).await;
    let mut leases = Vec::new();
    for _ in 0..10 {
        leases.push(sources.acquire(None, "prices").await.expect("acquire"));
    }
    assert_eq!((sources.len(), open_on_broker(&sources)), (1, 1));
    let broker = sources.brokers().get(None).expect("local").clone();
    let message = Publish { topic: "prices".into(), key: None, body: bytes::Bytes::from_static(b"{\"n\":1}") };
    broker.publish(message).await.expect("publish");
    for lease in &mut leases {
        let event = lease.recv().await.expect("an event");
        assert_eq!(event.payload_json(), "{\"n\":1}");
    }
    drop(leases);
    assert_eq!((sources.len(), open_on_broker(&sources)), (0, 0));
}

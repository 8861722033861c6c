//! Resume (DESIGN §12): a client drops its socket, 500 events are published while it is away
//! (another client stays subscribed to the same operation), and it subscribes again with the
//! last cursor it saw: exactly the 500, in order, then live events, no duplicate, and the first
//! result says `recovered = true`. With a cursor older than the history: `recovered = false`.
//! On the memory broker (history), Redis streams and NATS JetStream; over SSE with
//! `Last-Event-ID` too.

mod common;

use common::servers::{binary_available, NatsServer};
use common::streams::SseStream;
use common::*;
use serde_json::json;

const QUERY: &str = "subscription($topic: String!) { events(topic: $topic) { id payload } }";

/// Publishes `{"n": n}` for each n, as the broker under test takes events.
type Publisher = Box<dyn Fn(String, i64) -> futures_util::future::BoxFuture<'static, ()> + Send + Sync>;

fn through_hub(hub: &TestHub) -> Publisher {
    let (http, base) = (hub.http().clone(), hub.url(""));
    Box::new(move |topic, n| {
        let (http, url) = (http.clone(), format!("{base}/publish/{topic}"));
        Box::pin(async move {
            let response = http.post(url).body(json!({"n": n}).to_string()).send().await.unwrap();
            assert!(response.status().is_success());
        })
    })
}

async fn subscribe(hub: &TestHub, topic: &str, resume: Option<&str>) -> Client {
    subscribe_to(hub, QUERY, topic, resume).await
}

async fn subscribe_to(hub: &TestHub, query: &str, topic: &str, resume: Option<&str>) -> Client {
    let mut client = Client::ready(hub, TRANSPORT_WS).await;
    let mut payload = json!({"query": query, "variables": {"topic": topic}});
    if let Some(cursor) = resume {
        payload["extensions"] = json!({"resume": cursor});
    }
    client.send(json!({"type": "subscribe", "id": "1", "payload": payload})).await;
    client
}

/// The next result's `n`, cursor and `recovered` flag.
async fn next(client: &mut Client) -> (i64, String, Option<bool>) {
    let message = client.recv_json().await;
    assert_eq!(message["type"], "next", "{message}");
    let payload = &message["payload"];
    let n = payload["data"]["events"]["payload"]["n"].as_i64().unwrap_or_else(|| panic!("{message}"));
    let cursor = payload["extensions"]["cursor"].as_str().unwrap_or_else(|| panic!("no cursor: {message}")).to_owned();
    (n, cursor, payload["extensions"]["recovered"].as_bool())
}

/// The whole scenario on one hub whose default broker keeps history.
async fn resumes_without_gap(hub: &TestHub, topic: &str, publish: Publisher, away: i64) {
    let mut stayer = subscribe(hub, topic, None).await;
    let mut leaver = subscribe(hub, topic, None).await;
    hub.wait_metric("subhub_subscriptions", 2.0).await;
    for n in 0..3 {
        publish(topic.to_owned(), n).await;
    }
    let mut cursor = String::new();
    for n in 0..3 {
        let (got, at, _) = next(&mut leaver).await;
        assert_eq!(got, n);
        cursor = at;
        assert_eq!(next(&mut stayer).await.0, n);
    }
    drop(leaver);
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    for n in 3..3 + away {
        publish(topic.to_owned(), n).await;
    }
    let mut back = subscribe(hub, topic, Some(&cursor)).await;
    for (i, n) in (3..3 + away).enumerate() {
        let (got, _, recovered) = next(&mut back).await;
        assert_eq!(got, n, "replayed in order");
        assert_eq!(recovered, (i == 0).then_some(true), "only the first result says recovered");
    }
    hub.wait_metric("subhub_subscriptions", 2.0).await;
    for n in 3 + away..3 + away + 5 {
        publish(topic.to_owned(), n).await;
    }
    for n in 3 + away..3 + away + 5 {
        assert_eq!(next(&mut back).await.0, n, "live after the replay, no duplicate at the seam");
    }
    for n in 3..3 + away + 5 {
        assert_eq!(next(&mut stayer).await.0, n, "the client that stayed missed nothing");
    }
    assert_eq!(hub.metric("subhub_executions").await, 1.0, "the live part stays shared");
    // A resume is counted when its replay ends, which can be after the client has read the
    // replay's last event: the replay reads on until the broker has nothing newer.
    hub.wait_metric("subhub_resumes_total{recovered=\"true\"}", 1.0).await;
}

/// A cursor the broker no longer holds: live events, the first saying `recovered = false`.
async fn a_lost_cursor_says_so(hub: &TestHub, topic: &str, publish: Publisher, cursor: &str) {
    let mut back = subscribe(hub, topic, Some(cursor)).await;
    let told =
        wait_for(PATIENCE, || async { hub.metrics().await["subhub_resumes_total{recovered=\"false\"}"] == 1.0 }).await;
    assert!(told, "the resume was not counted as lost");
    publish(topic.to_owned(), 1000).await;
    let (n, _, recovered) = next(&mut back).await;
    assert_eq!((n, recovered), (1000, Some(false)));
    publish(topic.to_owned(), 1001).await;
    let (n, _, recovered) = next(&mut back).await;
    assert_eq!((n, recovered), (1001, None));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_memory_broker_replays_from_its_history() {
    let hub = TestHub::with_config("[brokers.local]\nkind = \"memory\"\nhistory = 1000\n").await;
    let publish = through_hub(&hub);
    resumes_without_gap(&hub, "mem.resume", publish, 500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_older_than_the_memory_history_is_not_recovered() {
    let hub = TestHub::with_config("[brokers.local]\nkind = \"memory\"\nhistory = 10\n").await;
    let publish = through_hub(&hub);
    for n in 0..50 {
        publish("mem.short".to_owned(), n).await;
    }
    // Event 5 was dropped from the history long ago.
    a_lost_cursor_says_so(&hub, "mem.short", publish, "5").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_history_a_resume_is_not_recovered() {
    let hub = TestHub::start().await;
    let publish = through_hub(&hub);
    a_lost_cursor_says_so(&hub, "mem.none", publish, "1").await;
}

const REDIS_STREAMS: &str =
    "default_broker = \"log\"\n[brokers.log]\nkind = \"redis\"\nmode = \"streams\"\nurl = \"redis://127.0.0.1:6379\"\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_streams_replay_from_the_stream() {
    if !broker_available("Redis", "127.0.0.1:6379") {
        return;
    }
    let hub = TestHub::with_config(REDIS_STREAMS).await;
    let publish = through_hub(&hub);
    resumes_without_gap(&hub, &unique("resume"), publish, 500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trimmed_redis_stream_cursor_is_not_recovered() {
    if !broker_available("Redis", "127.0.0.1:6379") {
        return;
    }
    let hub = TestHub::with_config(REDIS_STREAMS).await;
    let topic = unique("trimmed");
    let redis = redis::Client::open("redis://127.0.0.1:6379").unwrap();
    let mut connection = redis.get_multiplexed_async_connection().await.unwrap();
    let mut first = String::new();
    for n in 0..20 {
        let id: String = redis::cmd("XADD")
            .arg(&topic)
            .arg("*")
            .arg("payload")
            .arg(json!({"n": n}).to_string())
            .query_async(&mut connection)
            .await
            .unwrap();
        if n == 0 {
            first = id;
        }
    }
    let _: i64 = redis::cmd("XTRIM").arg(&topic).arg("MAXLEN").arg(5).query_async(&mut connection).await.unwrap();
    let publish = through_hub(&hub);
    a_lost_cursor_says_so(&hub, &topic, publish, &first).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn jetstream_replays_from_the_stream() {
    if !binary_available("nats-server") {
        return;
    }
    let server = NatsServer::start().await;
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    let config = async_nats::jetstream::stream::Config {
        name: "RESUME".into(),
        subjects: vec!["resume.>".into()],
        ..Default::default()
    };
    js.create_stream(config).await.unwrap();
    let hub = TestHub::with_config(&format!(
        "default_broker = \"bus\"\n[brokers.bus]\nkind = \"nats\"\nurl = \"{}\"\njetstream = \"RESUME\"\n",
        server.url()
    ))
    .await;
    hub.wait_metric("subhub_broker_connected", 1.0).await;
    let js_publish: Publisher = {
        let js = js.clone();
        Box::new(move |topic, n| {
            let js = js.clone();
            Box::pin(async move {
                js.publish(topic, json!({"n": n}).to_string().into()).await.unwrap().await.unwrap();
            })
        })
    };
    resumes_without_gap(&hub, "resume.ticks", js_publish, 500).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_sse_client_resumes_with_last_event_id() {
    let hub = TestHub::with_config("[brokers.local]\nkind = \"memory\"\nhistory = 100\n").await;
    let mut stayer = subscribe(&hub, "sse.resume", None).await;
    let mut stream = SseStream::get(&hub, QUERY, json!({"topic": "sse.resume"})).await;
    hub.wait_metric("subhub_subscriptions", 2.0).await;
    hub.publish("sse.resume", json!({"n": 0}).to_string()).await;
    let (_, last_id) = stream.next_result().await;
    drop(stream);
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    for n in 1..=20 {
        hub.publish("sse.resume", json!({"n": n}).to_string()).await;
    }
    let request = hub
        .http()
        .get(hub.url("/graphql"))
        .query(&[("query", QUERY), ("variables", &json!({"topic": "sse.resume"}).to_string())])
        .header("accept", "text/event-stream")
        .header("last-event-id", last_id.expect("the event had an id"));
    let mut back = SseStream::open(request).await;
    for n in 1..=20 {
        let (result, id) = back.next_result().await;
        assert_eq!(result["data"]["events"]["payload"]["n"], n, "{result}");
        assert_eq!(result["extensions"]["recovered"].as_bool(), (n == 1).then_some(true), "{result}");
        assert_eq!(id.as_deref(), result["extensions"]["cursor"].as_str());
    }
    for n in 0..=20 {
        assert_eq!(next(&mut stayer).await.0, n);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafka_replays_from_partition_offsets() {
    let cluster = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("resume", 1, 1).expect("topic");
    cluster.create_topic("resume2", 2, 1).expect("topic");
    let hub = TestHub::with_config(&format!(
        "default_broker = \"events\"\n[brokers.events]\nkind = \"kafka\"\nbootstrap_servers = \"{}\"\n",
        cluster.bootstrap_servers()
    ))
    .await;
    resumes_without_gap(&hub, "resume", through_hub(&hub), 500).await;

    // Two partitions: the cursor holds both offsets, and the replay misses nothing of either
    // (their interleaving is the broker's).
    let _stayer = subscribe(&hub, "resume2", None).await;
    let mut leaver = subscribe(&hub, "resume2", None).await;
    hub.wait_metric("subhub_subscriptions", 2.0).await;
    let publish = through_hub(&hub);
    for n in 0..10 {
        publish("resume2".to_owned(), n).await;
    }
    let mut cursor = String::new();
    for _ in 0..10 {
        cursor = next(&mut leaver).await.1;
    }
    assert_eq!(cursor.split(',').count(), 2, "one offset per partition: {cursor}");
    drop(leaver);
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    for n in 10..60 {
        publish("resume2".to_owned(), n).await;
    }
    let mut back = subscribe(&hub, "resume2", Some(&cursor)).await;
    let mut seen: Vec<i64> = Vec::new();
    for _ in 10..60 {
        seen.push(next(&mut back).await.0);
    }
    seen.sort_unstable();
    assert_eq!(seen, (10..60).collect::<Vec<_>>());
    // A cursor older than a partition's retention cannot be made here: librdkafka's mock
    // cluster does not support DeleteRecords. The hub checks each offset against the
    // partition's low watermark (`kafka.rs`, `read_history`).
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_kafka_cursor_of_another_kind_is_not_recovered() {
    let cluster = rdkafka::mocking::MockCluster::new(1).expect("mock cluster");
    cluster.create_topic("other", 1, 1).expect("topic");
    let hub = TestHub::with_config(&format!(
        "default_broker = \"events\"\n[brokers.events]\nkind = \"kafka\"\nbootstrap_servers = \"{}\"\n",
        cluster.bootstrap_servers()
    ))
    .await;
    a_lost_cursor_says_so(&hub, "other", through_hub(&hub), "not-a-cursor").await;
    // A cursor naming partitions the topic does not have: refused at once, whatever their
    // number, without a lookup of each.
    let invented: Vec<String> = (0..150).map(|p| format!("{p}:0")).collect();
    let started = std::time::Instant::now();
    let _back = subscribe(&hub, "other", Some(&invented.join(","))).await;
    let told =
        wait_for(PATIENCE, || async { hub.metrics().await["subhub_resumes_total{recovered=\"false\"}"] == 2.0 }).await;
    assert!(told, "the invented cursor was not counted as lost");
    assert!(started.elapsed() < std::time::Duration::from_secs(5), "took {:?}", started.elapsed());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_longer_than_a_slow_clients_queue_waits_for_room_and_drops_nothing() {
    let hub =
        TestHub::with_config("[brokers.local]\nkind = \"memory\"\nhistory = 1000\n[limits]\nconnection_queue = 8\n")
            .await;
    // 10 MB in all: more than the socket and the hub's write buffer take.
    let pad = "x".repeat(20_000);
    for n in 0..500 {
        hub.publish("mem.slow", json!({"n": n, "pad": pad}).to_string()).await;
    }
    // A client that does not read yet, behind a small socket buffer: its queue fills.
    let mut slow = Client::connect_small_buffer(&hub, TRANSPORT_WS).await;
    slow.init().await;
    let payload = json!({"query": QUERY, "variables": {"topic": "mem.slow"}, "extensions": {"resume": "0"}});
    slow.send(json!({"type": "subscribe", "id": "1", "payload": payload})).await;
    hub.wait_metric("subhub_queued_messages", 8.0).await;
    for n in 0..500 {
        let (got, _, recovered) = next(&mut slow).await;
        assert_eq!(got, n, "replayed in order, none dropped");
        assert_eq!(recovered, (n == 0).then_some(true));
    }
    assert_eq!(hub.metrics().await["subhub_dropped_total{reason=\"slow_consumer\"}"], 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cursor_older_than_the_jetstream_stream_is_not_recovered() {
    if !binary_available("nats-server") {
        return;
    }
    let server = NatsServer::start().await;
    let js = async_nats::jetstream::new(async_nats::connect(server.url()).await.unwrap());
    // The stream keeps its last 10 messages.
    let config = async_nats::jetstream::stream::Config {
        name: "SHORT".into(),
        subjects: vec!["short.>".into()],
        max_messages: 10,
        ..Default::default()
    };
    js.create_stream(config).await.unwrap();
    for n in 0..50 {
        js.publish("short.ticks", json!({"n": n}).to_string().into()).await.unwrap().await.unwrap();
    }
    let hub = TestHub::with_config(&format!(
        "default_broker = \"bus\"\n[brokers.bus]\nkind = \"nats\"\nurl = \"{}\"\njetstream = \"SHORT\"\n",
        server.url()
    ))
    .await;
    hub.wait_metric("subhub_broker_connected", 1.0).await;
    let js_publish: Publisher = Box::new(move |topic, n| {
        let js = js.clone();
        Box::pin(async move {
            js.publish(topic, json!({"n": n}).to_string().into()).await.unwrap().await.unwrap();
        })
    });
    // Sequence 5 went long ago.
    a_lost_cursor_says_so(&hub, "short.ticks", js_publish, "5").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replays_beyond_max_replays_wait_their_turn_and_miss_nothing() {
    let hub =
        TestHub::with_config("[brokers.local]\nkind = \"memory\"\nhistory = 1000\n[limits]\nmax_replays = 1\n").await;
    let publish = through_hub(&hub);
    for n in 0..200 {
        publish("mem.turns".to_owned(), n).await;
    }
    let mut resumed = Vec::new();
    for _ in 0..3 {
        resumed.push(subscribe(&hub, "mem.turns", Some("0")).await);
    }
    for client in &mut resumed {
        for n in 0..200 {
            let (got, _, recovered) = next(client).await;
            assert_eq!((got, recovered), (n, (n == 0).then_some(true)));
        }
    }
    hub.wait_metric("subhub_resumes_total{recovered=\"true\"}", 3.0).await;
    assert_eq!(hub.metric("subhub_replayed_total").await, 600.0);
}

/// Publishes to one topic from many requests at once while two clients read it: the events
/// come live in the order of their cursors, and a client that leaves and resumes from its last
/// cursor gets exactly what the other saw after that point, in the same order. It leaves where a
/// resume is hardest: right after an event that came before an older one, if any did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_publishes_resume_without_gap_or_repeat() {
    use futures_util::StreamExt;

    const EVENTS: i64 = 2000;
    const AT_ONCE: usize = 16;
    let hub = TestHub::with_config("[brokers.local]\nkind = \"memory\"\nhistory = 10000\n").await;
    let topic = "mem.concurrent";
    let mut stayer = subscribe(&hub, topic, None).await;
    let mut leaver = subscribe(&hub, topic, None).await;
    hub.wait_metric("subhub_subscriptions", 2.0).await;
    let publish = through_hub(&hub);
    let publishing = futures_util::stream::iter(0..EVENTS)
        .map(|n| publish(topic.to_owned(), n))
        .buffer_unordered(AT_ONCE)
        .collect::<Vec<()>>();
    let reading = async {
        let mut seen = Vec::new();
        for _ in 0..EVENTS {
            seen.push(next(&mut stayer).await);
        }
        seen
    };
    let (_, seen) = tokio::join!(publishing, reading);
    let cursors: Vec<u64> = seen.iter().map(|(_, cursor, _)| cursor.parse().expect("a memory cursor")).collect();
    let inversion = cursors.windows(2).position(|pair| pair[0] >= pair[1]);

    let leave_after = inversion.map_or(seen.len() / 2, |at| at + 1);
    let mut cursor = String::new();
    for (n, _, _) in &seen[..leave_after] {
        let (got, at, _) = next(&mut leaver).await;
        assert_eq!(got, *n, "both clients see one order");
        cursor = at;
    }
    drop(leaver);
    hub.wait_metric("subhub_subscriptions", 1.0).await;
    let mut back = subscribe(&hub, topic, Some(&cursor)).await;
    let missed: Vec<i64> = seen[leave_after..].iter().map(|(n, _, _)| *n).collect();
    // Once the replay is over, one more event marks the end of what the client is owed.
    hub.wait_metric("subhub_resumes_total{recovered=\"true\"}", 1.0).await;
    publish(topic.to_owned(), EVENTS).await;
    let mut resumed = Vec::new();
    loop {
        match next(&mut back).await.0 {
            EVENTS => break,
            n => resumed.push(n),
        }
    }
    if let Some(at) = (0..missed.len().max(resumed.len())).find(|&i| resumed.get(i) != missed.get(i)) {
        let window = |list: &[i64]| list[at.saturating_sub(2)..(at + 3).min(list.len())].to_vec();
        panic!(
            "resumed after cursor {cursor}, the client got {} events for {} missed; from #{at} it got {:?} for {:?}",
            resumed.len(),
            missed.len(),
            window(&resumed),
            window(&missed)
        );
    }
    if let Some(at) = inversion {
        panic!("events came live out of their cursors' order: {:?} at {at}", &cursors[at..at + 2]);
    }
}

/// `limits.max_replays` bounds the work of replays, not only their writes: a replay waiting for
/// its turn has read no history, so NATS holds no JetStream consumer for it. The turn is held by
/// a replay on the memory broker whose client does not read; the replay that waits is on
/// JetStream, where the server announces every API request it takes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_waiting_for_its_turn_reads_no_history() {
    use futures_util::StreamExt;

    if !binary_available("nats-server") {
        return;
    }
    let server = NatsServer::start().await;
    let nats = async_nats::connect(server.url()).await.unwrap();
    let js = async_nats::jetstream::new(nats.clone());
    let config = async_nats::jetstream::stream::Config {
        name: "TURNS".into(),
        subjects: vec!["turns.>".into()],
        ..Default::default()
    };
    js.create_stream(config).await.unwrap();
    for n in 0..20 {
        js.publish("turns.b", json!({"n": n}).to_string().into()).await.unwrap().await.unwrap();
    }
    let hub = TestHub::with_config(&format!(
        "default_broker = \"local\"\n[brokers.local]\nkind = \"memory\"\nhistory = 1000\n\
         [brokers.bus]\nkind = \"nats\"\nurl = \"{}\"\njetstream = \"TURNS\"\n\
         [limits]\nmax_replays = 1\nconnection_queue = 8\n",
        server.url()
    ))
    .await;
    hub.wait_metric("subhub_broker_connected", 2.0).await;
    let on_bus = "subscription($topic: String!) { events(topic: $topic, broker: \"bus\") { id payload } }";
    // The JetStream source is open before the resume, so what the resume asks of the server
    // is its replay's alone.
    let _stayer = subscribe_to(&hub, on_bus, "turns.b", None).await;
    hub.wait_metric("subhub_subscriptions", 1.0).await;

    // The only turn: a replay of 10 MB to a client that does not read, waiting for room.
    let pad = "x".repeat(20_000);
    for n in 0..500 {
        hub.publish("mem.hog", json!({"n": n, "pad": pad}).to_string()).await;
    }
    let mut hog = Client::connect_small_buffer(&hub, TRANSPORT_WS).await;
    hog.init().await;
    let payload = json!({"query": QUERY, "variables": {"topic": "mem.hog"}, "extensions": {"resume": "0"}});
    hog.send(json!({"type": "subscribe", "id": "1", "payload": payload})).await;
    hub.wait_metric("subhub_queued_messages", 8.0).await;

    let mut requests = nats.subscribe("$JS.EVENT.ADVISORY.API").await.unwrap();
    nats.flush().await.unwrap();
    let replay_consumers = |payload: &[u8]| String::from_utf8_lossy(payload).contains("_replay_");
    let mut waiting = subscribe_to(&hub, on_bus, "turns.b", Some("0")).await;
    hub.wait_metric("subhub_subscriptions", 3.0).await;
    // Absence cannot be waited for; this is long enough for a replay that does not wait for its
    // turn to have asked for its consumer many times over.
    let asked = tokio::time::timeout(std::time::Duration::from_secs(2), async {
        while let Some(request) = requests.next().await {
            if replay_consumers(&request.payload) {
                return String::from_utf8_lossy(&request.payload).into_owned();
            }
        }
        String::new()
    })
    .await;
    assert!(asked.is_err(), "a replay without its turn asked JetStream: {}", asked.unwrap_or_default());

    // Once the turn is free, the replay reads and sends what the stream holds.
    for n in 0..500 {
        assert_eq!(next(&mut hog).await.0, n);
    }
    for n in 0..20 {
        let (got, _, recovered) = next(&mut waiting).await;
        assert_eq!((got, recovered), (n, (n == 0).then_some(true)));
    }
    hub.wait_metric("subhub_resumes_total{recovered=\"true\"}", 2.0).await;
    // Every consumer a replay made is gone: the stream keeps only the source's.
    let consumers = wait_for(PATIENCE, || async {
        js.get_stream("TURNS").await.is_ok_and(|stream| stream.cached_info().state.consumer_count == 1)
    })
    .await;
    assert!(consumers, "a replay's consumer was left on the server");
}

//! `/metrics` read as a scraper reads it: every line parses, label values come back as they
//! were, and `subhub_delivery_seconds` counts each event once per execution.

mod common;

use common::*;
use serde_json::json;

/// One sample line: its name, its labels (unescaped) and its value.
type Sample = (String, Vec<(String, String)>, f64);

/// Parses one sample line of the text format (0.0.4), label values unescaped; `None` if the
/// line is not one.
fn sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let name_ok = name
        .chars()
        .enumerate()
        .all(|(i, c)| c == '_' || c == ':' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
    if name.is_empty() || !name_ok {
        return None;
    }
    let mut rest = line[name_end..].chars().peekable();
    let mut labels = Vec::new();
    if rest.peek() == Some(&'{') {
        rest.next();
        loop {
            if rest.peek() == Some(&'}') {
                rest.next();
                break;
            }
            let label: String = rest.by_ref().take_while(|c| *c != '=').collect();
            if label.is_empty() || !label.chars().all(|c| c == '_' || c.is_ascii_alphanumeric()) || rest.next()? != '"'
            {
                return None;
            }
            let mut value = String::new();
            loop {
                match rest.next()? {
                    '"' => break,
                    '\\' => match rest.next()? {
                        'n' => value.push('\n'),
                        '\\' => value.push('\\'),
                        '"' => value.push('"'),
                        _ => return None,
                    },
                    '\n' => return None,
                    c => value.push(c),
                }
            }
            labels.push((label, value));
            match rest.next()? {
                ',' => {}
                '}' => break,
                _ => return None,
            }
        }
    }
    if rest.next()? != ' ' {
        return None;
    }
    let value: String = rest.collect();
    let value = match value.as_str() {
        "+Inf" => f64::INFINITY,
        "-Inf" => f64::NEG_INFINITY,
        other => other.parse().ok()?,
    };
    Some((name.to_owned(), labels, value))
}

/// Every sample of `/metrics`; panics naming the first line that does not parse.
async fn scrape(hub: &TestHub) -> Vec<Sample> {
    let text = hub.http().get(hub.url("/metrics")).send().await.expect("metrics").text().await.expect("body");
    text.lines()
        .filter(|line| !line.is_empty() && !line.starts_with('#'))
        .map(|line| sample(line).unwrap_or_else(|| panic!("not a sample line: {line:?}\n{text}")))
        .collect()
}

/// A broker's name is the operator's to choose, quotes, backslashes and newlines included: the
/// exposition escapes it, and a scraper reads the name back as it was.
#[tokio::test]
async fn label_values_are_escaped_so_every_line_parses_and_names_come_back_whole() {
    let name = "we\"ird\\name\nline two";
    let toml_name = name.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n");
    let hub = TestHub::with_config(&format!(
        "default_broker = \"{toml_name}\"\n[brokers.\"{toml_name}\"]\nkind = \"memory\"\n"
    ))
    .await;
    let samples = scrape(&hub).await;
    let connected = samples.iter().find(|(metric, labels, _)| {
        metric == "subhub_broker_connected" && labels == &[("broker".to_owned(), name.to_owned())]
    });
    assert_eq!(connected.map(|(_, _, value)| *value), Some(1.0), "{samples:?}");
    let open = samples.iter().find(|(metric, labels, _)| {
        metric == "subhub_sources_open" && labels.iter().any(|(label, value)| label == "broker" && value == name)
    });
    assert!(open.is_some(), "{samples:?}");
}

/// `subhub_delivery_seconds` times every event to the last subscriber of each execution: two
/// executions (two distinct operations) with three and one subscribers, five events: ten
/// observations, not twenty.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivery_seconds_counts_each_event_once_per_execution() {
    let hub = TestHub::start().await;
    let topic = unique("delivery");
    let documents = [EVENTS_QUERY, "subscription($topic: String!) { events(topic: $topic) { payload } }"];
    let mut clients = Vec::new();
    for (document, subscribers) in documents.iter().zip([3, 1]) {
        for _ in 0..subscribers {
            let mut client = Client::ready(&hub, TRANSPORT_WS).await;
            client.subscribe("s", document, json!({ "topic": topic })).await;
            clients.push(client);
        }
    }
    hub.wait_metric("subhub_subscriptions", 4.0).await;
    assert_eq!(hub.metric("subhub_executions").await, 2.0);
    for n in 0..5 {
        hub.publish(&topic, json!({ "n": n }).to_string()).await;
    }
    for client in &mut clients {
        for n in 0..5 {
            let message = client.recv_json().await;
            assert_eq!(message["payload"]["data"]["events"]["payload"]["n"], n, "{message}");
        }
    }
    hub.wait_metric("subhub_delivery_seconds_count", 10.0).await;
    let samples = scrape(&hub).await;
    let value = |name: &str, le: Option<&str>| {
        samples
            .iter()
            .find(|(metric, labels, _)| {
                metric == name && le.is_none_or(|le| labels.iter().any(|(l, v)| l == "le" && v == le))
            })
            .map(|(_, _, value)| *value)
    };
    assert_eq!(value("subhub_delivery_seconds_bucket", Some("+Inf")), Some(10.0));
    let seconds = value("subhub_delivery_seconds_sum", None).expect("a sum");
    assert!(seconds > 0.0 && seconds < 10.0 * PATIENCE.as_secs_f64(), "{seconds}");
    // Every subscriber has every result: nothing more is observed.
    assert_eq!(hub.metric("subhub_deliveries_total").await, 20.0);
    assert_eq!(hub.metric("subhub_delivery_seconds_count").await, 10.0);
}

//! `/metrics` read as a scraper reads it: every line parses, label values come back as they
//! were.

mod common;

use common::*;

/// One sample line: its name, its labels (unescaped) and its value.
type Sample = (String, Vec<(String, String)>, f64);

/// Parses one sample line of the text format (0.0.4), label values unescaped; `None` if the
/// line is not one.
fn sample(line: &str) -> Option<Sample> {
    let name_end = line.find(['{', ' '])?;
    let name = &line[..name_end];
    let name_ok = name.chars().enumerate().all(|(i, c)| c == '_' || c == ':' || c.is_ascii_alphabetic() || (i > 0 && c.is_ascii_digit()));
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
            if label.is_empty() || !label.chars().all(|c| c == '_' || c.is_ascii_alphanumeric()) || rest.next()? != '"' {
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

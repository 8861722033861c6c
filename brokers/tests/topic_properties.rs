//! Properties of topic validation over generated topics: checking never panics, canonical
//! forms are stable and mean what the topic meant, and the hub's routing-key matcher agrees
//! with AMQP's definition while never costing more than linear time.

use proptest::prelude::*;
use subhub_brokers::amqp::{canonical_routing_key, routing_key_matches};
use subhub_brokers::broker::validate_common;
use subhub_brokers::kafka::validate_topic_name;

/// AMQP's definition, followed literally (exponential on crafted patterns: small inputs only).
fn reference(pattern: &[&str], key: &[&str]) -> bool {
    match pattern.split_first() {
        None => key.is_empty(),
        Some((&"#", rest)) => (0..=key.len()).any(|skip| reference(rest, &key[skip..])),
        Some((&"*", rest)) => !key.is_empty() && reference(rest, &key[1..]),
        Some((word, rest)) => key.first() == Some(word) && reference(rest, &key[1..]),
    }
}

fn words(max: usize, alphabet: &'static [&'static str]) -> impl Strategy<Value = String> {
    prop::collection::vec(proptest::sample::select(alphabet), 1..max).prop_map(|words| words.join("."))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn checking_any_topic_never_panics(topic in any::<String>()) {
        let _ = validate_common("b", &topic);
        let _ = validate_topic_name("b", &topic);
        if let Ok(canonical) = canonical_routing_key(&topic) {
            let _ = routing_key_matches(&canonical, &topic);
        }
    }

    /// The canonical form is stable, holds one `#` at most, and matches the same keys.
    #[test]
    fn canonical_routing_keys_mean_the_same(
        pattern in words(8, &["a", "b", "*", "#"]),
        key in words(8, &["a", "b"]),
    ) {
        if let Ok(canonical) = canonical_routing_key(&pattern) {
            prop_assert_eq!(canonical_routing_key(&canonical).ok(), Some(canonical.clone()));
            prop_assert!(canonical.split('.').filter(|word| *word == "#").count() <= 1);
            let (p, c, k): (Vec<&str>, Vec<&str>, Vec<&str>) =
                (pattern.split('.').collect(), canonical.split('.').collect(), key.split('.').collect());
            prop_assert_eq!(reference(&p, &k), reference(&c, &k));
        }
    }

    #[test]
    fn the_matcher_agrees_with_the_definition(
        pattern in words(7, &["a", "b", "*", "#"]),
        key in words(9, &["a", "b", "c"]),
    ) {
        let (p, k): (Vec<&str>, Vec<&str>) = (pattern.split('.').collect(), key.split('.').collect());
        prop_assert_eq!(routing_key_matches(&pattern, &key), reference(&p, &k), "{} against {}", pattern, key);
    }
}

/// Every pattern of up to four words of `a`, `b`, `*`, `#` against every key of up to five
/// words of `a`, `b`: the matcher agrees with the definition on all of them.
#[test]
fn the_matcher_agrees_with_the_definition_on_every_small_case() {
    fn all(words: &[&str], up_to: usize) -> Vec<String> {
        let mut out: Vec<String> = words.iter().map(|w| w.to_string()).collect();
        let mut last = out.clone();
        for _ in 1..up_to {
            last = last.iter().flat_map(|prefix| words.iter().map(move |w| format!("{prefix}.{w}"))).collect();
            out.extend(last.iter().cloned());
        }
        out
    }
    let keys = all(&["a", "b"], 5);
    for pattern in all(&["a", "b", "*", "#"], 4) {
        let p: Vec<&str> = pattern.split('.').collect();
        for key in &keys {
            let k: Vec<&str> = key.split('.').collect();
            assert_eq!(routing_key_matches(&pattern, key), reference(&p, &k), "{pattern} against {key}");
        }
    }
}

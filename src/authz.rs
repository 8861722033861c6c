//! `[authz]` (DESIGN §11): which topics a client may subscribe to and publish on, for every API
//! (the built-in `events` and `publish`, typed fields, `POST /publish`). Without `[authz]`
//! every topic is open. With it, what no rule allows is refused: a GraphQL error with
//! `extensions.code = "FORBIDDEN"` (HTTP 403), counted in `subhub_refused_total{reason="forbidden"}`.
//!
//! A rule's `topics` is a glob over the topic as the broker takes it: `*` is one segment (no
//! `.`, `/` or `:`), `**` anything. It may be templated with claims (`user.{{ claims.sub }}.**`),
//! whose values match only as themselves, never as globs. A rule may require claim values, and
//! only a rule with `wildcards = true` allows topics with the broker's own wildcards.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::{Map, Value};
use subhub_brokers::Broker;

use std::sync::Arc;

use subhub_subscriptions::{Metrics, Refusal};

use crate::template::{self, Part, Template};

/// The `[authz]` table.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuthzConfig {
    #[serde(default)]
    pub rules: Vec<RuleConfig>,
}

/// One `[[authz.rules]]` entry.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuleConfig {
    /// A glob over topics: `*` one segment, `**` anything; `{{ claims.PATH }}` templates.
    pub topics: String,
    #[serde(default)]
    pub subscribe: bool,
    #[serde(default)]
    pub publish: bool,
    /// Claim values the client's token must carry (`role = "admin"`, `"org.id" = 7`).
    #[serde(default)]
    pub claims: BTreeMap<String, toml::Value>,
    /// May subscribe with the broker's own wildcards (Redis `*`, AMQP `#`, …).
    #[serde(default)]
    pub wildcards: bool,
    /// Only topics of this broker (any broker when absent).
    pub broker: Option<String>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Action {
    Subscribe,
    Publish,
}

impl Action {
    fn verb(self) -> &'static str {
        match self {
            Action::Subscribe => "subscribe to",
            Action::Publish => "publish on",
        }
    }
}

/// The rules, checked.
#[derive(Debug)]
pub struct Authz {
    rules: Vec<Rule>,
}

#[derive(Debug)]
struct Rule {
    topics: Template,
    subscribe: bool,
    publish: bool,
    claims: Vec<(Vec<String>, Value)>,
    wildcards: bool,
    broker: Option<String>,
}

/// A refusal; the text is safe to show the client.
#[derive(Debug, thiserror::Error)]
#[error("not allowed to {verb} topic `{topic}` of broker `{broker}`")]
pub struct Forbidden {
    verb: &'static str,
    topic: String,
    broker: String,
}

impl Authz {
    /// Checks the rules; the message names the rule at fault.
    pub fn from_config(config: &AuthzConfig, brokers: &[&str]) -> Result<Self, String> {
        let mut rules = Vec::with_capacity(config.rules.len());
        for (n, rule) in config.rules.iter().enumerate() {
            let at = |message: String| format!("authz.rules[{n}]: {message}");
            let topics = Template::parse(&rule.topics).map_err(at)?;
            if topics.args().next().is_some() {
                return Err(at("a rule's topics may use `{{ claims.PATH }}`, not arguments".into()));
            }
            if !rule.subscribe && !rule.publish {
                return Err(at("the rule allows nothing: set subscribe = true, publish = true or both".into()));
            }
            if let Some(broker) = &rule.broker {
                if !brokers.contains(&broker.as_str()) {
                    return Err(at(format!("broker = \"{broker}\" names no configured broker")));
                }
            }
            let claims = rule
                .claims
                .iter()
                .map(|(path, value)| {
                    let value = serde_json::to_value(value).map_err(|error| at(format!("claims.{path}: {error}")))?;
                    Ok((path.split('.').map(str::to_owned).collect(), value))
                })
                .collect::<Result<Vec<_>, String>>()?;
            rules.push(Rule {
                topics,
                subscribe: rule.subscribe,
                publish: rule.publish,
                claims,
                wildcards: rule.wildcards,
                broker: rule.broker.clone(),
            });
        }
        Ok(Authz { rules })
    }

    /// Whether a client with `claims` may do `action` on `topic` of `broker`.
    pub fn check(
        &self,
        action: Action,
        broker: &dyn Broker,
        topic: &str,
        claims: &Map<String, Value>,
    ) -> Result<(), Forbidden> {
        // The topic the broker takes, and its wildcards: `#.#.z` is checked as `#.z`.
        let canonical = broker.canonical_topic(topic).map(|t| t.into_owned()).unwrap_or_else(|_| topic.to_owned());
        let wildcards = broker.wildcards(&canonical) > 0;
        let allowed = self.rules.iter().any(|rule| {
            let acts = match action {
                Action::Subscribe => rule.subscribe,
                Action::Publish => rule.publish,
            };
            acts && rule.broker.as_deref().is_none_or(|name| name == broker.name())
                && (!wildcards || rule.wildcards)
                && rule
                    .claims
                    .iter()
                    .all(|(path, value)| template::claim(claims, path).is_ok_and(|claim| same(claim, value)))
                && glob(&rule.topics, claims).is_some_and(|tokens| matches(&tokens, &canonical))
        });
        if allowed {
            Ok(())
        } else {
            Err(Forbidden { verb: action.verb(), topic: canonical, broker: broker.name().to_owned() })
        }
    }
}

/// Authorization as every API checks it: the rules, if configured, and refusals counted.
pub struct Access {
    authz: Option<Authz>,
    metrics: Arc<Metrics>,
}

impl Access {
    pub fn new(authz: Option<Authz>, metrics: Arc<Metrics>) -> Self {
        Access { authz, metrics }
    }

    /// Whether a client with `claims` may do `action` on `topic` of `broker`; everyone may
    /// without `[authz]`. A refusal is counted.
    pub fn check(
        &self,
        action: Action,
        broker: &dyn Broker,
        topic: &str,
        claims: &Map<String, Value>,
    ) -> Result<(), Forbidden> {
        let Some(authz) = &self.authz else { return Ok(()) };
        authz.check(action, broker, topic, claims).inspect_err(|_| self.metrics.refuse(Refusal::Forbidden))
    }

    /// Whether [`Access::check`] would allow it, without counting a refusal (for showing, not
    /// for serving).
    pub fn allows(&self, action: Action, broker: &dyn Broker, topic: &str, claims: &Map<String, Value>) -> bool {
        self.authz.as_ref().is_none_or(|authz| authz.check(action, broker, topic, claims).is_ok())
    }

    /// [`Access::check`] for a GraphQL resolver: a refusal is an error with
    /// `extensions.code = "FORBIDDEN"`.
    pub fn resolve(
        &self,
        action: Action,
        broker: &dyn Broker,
        topic: &str,
        claims: &Map<String, Value>,
    ) -> Result<(), async_graphql::Error> {
        use async_graphql::ErrorExtensions as _;
        self.check(action, broker, topic, claims).map_err(|forbidden| {
            async_graphql::Error::new(forbidden.to_string()).extend_with(|_, e| e.set("code", FORBIDDEN))
        })
    }
}

/// The `extensions.code` of a refusal by `[authz]`.
pub const FORBIDDEN: &str = "FORBIDDEN";

fn same(a: &Value, b: &Value) -> bool {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => x.as_f64() == y.as_f64(),
        _ => a == b,
    }
}

#[derive(Debug, PartialEq)]
enum Token {
    Literal(String),
    /// `*`: one segment.
    Star,
    /// `**`: anything.
    Globstar,
}

/// A rule's glob for one client: claims become literals (a claim's `*` is no glob); `None` when
/// the client lacks a claim it names.
fn glob(template: &Template, claims: &Map<String, Value>) -> Option<Vec<Token>> {
    let mut tokens = Vec::new();
    for part in template.parts() {
        match part {
            Part::Text(text) => {
                let mut rest = text.as_str();
                while !rest.is_empty() {
                    if let Some(after) = rest.strip_prefix("**") {
                        tokens.push(Token::Globstar);
                        rest = after;
                    } else if let Some(after) = rest.strip_prefix('*') {
                        tokens.push(Token::Star);
                        rest = after;
                    } else {
                        let end = rest.find('*').unwrap_or(rest.len());
                        tokens.push(Token::Literal(rest[..end].to_owned()));
                        rest = &rest[end..];
                    }
                }
            }
            Part::Claim(path) => match template::claim(claims, path).ok()? {
                Value::String(text) => tokens.push(Token::Literal(text.clone())),
                Value::Number(number) => tokens.push(Token::Literal(number.to_string())),
                Value::Bool(flag) => tokens.push(Token::Literal(flag.to_string())),
                _ => return None,
            },
            Part::Arg(_) => return None,
        }
    }
    Some(tokens)
}

/// Segments are separated by any of these.
fn separator(c: char) -> bool {
    matches!(c, '.' | '/' | ':')
}

/// Whether `tokens` match all of `text`: dynamic programming over (token, position), so time is
/// bounded by their product, whatever the glob.
fn matches(tokens: &[Token], text: &str) -> bool {
    let chars: Vec<char> = text.chars().collect();
    // reachable[i]: the tokens so far can end right before char i.
    let mut reachable = vec![false; chars.len() + 1];
    reachable[0] = true;
    for token in tokens {
        let mut next = vec![false; chars.len() + 1];
        for start in (0..=chars.len()).filter(|&i| reachable[i]) {
            match token {
                Token::Literal(literal) => {
                    let literal: Vec<char> = literal.chars().collect();
                    if chars[start..].starts_with(&literal) {
                        next[start + literal.len()] = true;
                    }
                }
                Token::Star => {
                    next[start] = true;
                    for end in start..chars.len() {
                        if separator(chars[end]) {
                            break;
                        }
                        next[end + 1] = true;
                    }
                }
                Token::Globstar => {
                    next[start..].iter_mut().for_each(|reach| *reach = true);
                    break;
                }
            }
        }
        reachable = next;
    }
    reachable[chars.len()]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn tokens(glob_text: &str, claims: Value) -> Option<Vec<Token>> {
        glob(&Template::parse(glob_text).unwrap(), claims.as_object().unwrap())
    }

    fn allows(glob_text: &str, topic: &str) -> bool {
        matches(&tokens(glob_text, json!({})).unwrap(), topic)
    }

    #[test]
    fn stars_take_one_segment_and_globstars_anything() {
        assert!(allows("public.**", "public.a.b"));
        assert!(allows("public.**", "public."));
        assert!(!allows("public.**", "private.a"));
        assert!(allows("orders.*", "orders.7"));
        assert!(!allows("orders.*", "orders.7.items"));
        assert!(allows("orders.*.items", "orders.7.items"));
        assert!(allows("devices/*/state", "devices/d1/state"));
        assert!(!allows("devices/*/state", "devices/d1/x/state"));
        assert!(allows("**", "anything/at:all"));
        assert!(allows("a*c", "abc") && !allows("a*c", "a.c"));
    }

    #[test]
    fn claims_match_only_as_themselves() {
        let mine = tokens("user.{{ claims.sub }}.**", json!({"sub": "ada"})).unwrap();
        assert!(matches(&mine, "user.ada.orders"));
        assert!(!matches(&mine, "user.bob.orders"));
        // A subject of `*` is no glob.
        let star = tokens("user.{{ claims.sub }}.**", json!({"sub": "*"})).unwrap();
        assert!(!matches(&star, "user.ada.orders"));
        assert!(matches(&star, "user.*.orders"));
        assert!(tokens("user.{{ claims.sub }}", json!({})).is_none(), "a missing claim matches nothing");
    }

    #[test]
    fn a_glob_of_many_stars_costs_no_more_than_its_size() {
        let glob_text = "*a".repeat(100) + "b";
        let topic = "a".repeat(255);
        let started = std::time::Instant::now();
        assert!(!allows(&glob_text, &topic));
        assert!(started.elapsed() < std::time::Duration::from_secs(2));
    }
}

//! The config file (DESIGN §7): TOML, every key defaulted, unknown keys refused with the file,
//! line and column, and `SUBHUB_*` environment variables overriding keys
//! (`SUBHUB_LISTEN`, `SUBHUB_LIMITS__MAX_CONNECTIONS`: `__` separates table levels).
//!
//! ## Layout
//! - this file: the top-level keys, loading, overrides, errors with file:line:column.
//! - `limits`: `[limits]`.
//! - `http`: `[http]`.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde::Deserialize;

use crate::auth::AuthConfig;
use crate::authz::AuthzConfig;
use crate::schema::typed::TypedSchema;
use subhub_brokers::memory::MemoryConfig;
use subhub_brokers::BrokerConfig;
use subhub_federation::{FederationConfig, SubgraphConfig, Supergraph};
use subhub_upstream_ws::UpstreamConfig;

mod http;
mod limits;

pub use http::HttpConfig;
pub use limits::{Limits, SlowConsumer};

/// Environment variables starting with this override config keys.
pub const ENV_PREFIX: &str = "SUBHUB_";
/// Names the config file; not a key override.
pub const ENV_CONFIG_FILE: &str = "SUBHUB_CONFIG";

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Address to serve on.
    #[serde(default = "defaults::listen")]
    pub listen: SocketAddr,
    /// Broker of subscriptions and publishes that name none.
    #[serde(default = "defaults::default_broker")]
    pub default_broker: String,
    /// Serve the built-in `events` / `publish` API beside a typed schema.
    #[serde(default = "defaults::yes")]
    pub generic_api: bool,
    /// A typed schema: an SDL file with `@subscribe`, `@publish`, `@filter` and `@event`.
    pub schema: Option<PathBuf>,
    /// The typed schema, read and checked when the config is loaded.
    #[serde(skip)]
    pub typed: Option<Arc<TypedSchema>>,
    #[serde(default)]
    pub brokers: BTreeMap<String, BrokerConfig>,
    #[serde(default)]
    pub limits: Limits,
    /// JWT verification on `connection_init` and HTTP; absent means no auth.
    pub auth: Option<AuthConfig>,
    /// Which topics clients may subscribe to and publish on; absent means every topic is open.
    pub authz: Option<AuthzConfig>,
    /// Upstream GraphQL servers whose subscriptions the hub forwards.
    #[serde(default)]
    pub upstreams: BTreeMap<String, UpstreamConfig>,
    #[serde(default)]
    pub http: HttpConfig,
    /// The supergraph served as a federation gateway; absent means no federation.
    pub federation: Option<FederationConfig>,
    /// The supergraph `[federation]` names, read and checked when the config is loaded.
    #[serde(skip)]
    pub supergraph: Option<Arc<Supergraph>>,
    /// Settings of subgraphs, by their names in the supergraph (and for `subhub compose`).
    #[serde(default)]
    pub subgraphs: BTreeMap<String, SubgraphConfig>,
}

mod defaults {
    use std::net::{Ipv4Addr, SocketAddr};

    pub fn listen() -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 4000))
    }

    pub fn default_broker() -> String {
        "local".to_owned()
    }

    pub fn yes() -> bool {
        true
    }
}

impl Default for Config {
    fn default() -> Self {
        let mut config = Config {
            listen: defaults::listen(),
            default_broker: defaults::default_broker(),
            generic_api: true,
            schema: None,
            typed: None,
            brokers: BTreeMap::new(),
            limits: Limits::default(),
            auth: None,
            authz: None,
            upstreams: BTreeMap::new(),
            http: HttpConfig::default(),
            federation: None,
            supergraph: None,
            subgraphs: BTreeMap::new(),
        };
        config.fill_defaults();
        config
    }
}

/// Why the config cannot be used; each message names the file, key or variable at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read config file {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("{path}:{line}:{column}: {message}")]
    Parse { path: PathBuf, line: usize, column: usize, message: String },
    #[error("{path}: {message}")]
    Invalid { path: String, message: String },
    #[error("environment {vars}: {message}")]
    Env { vars: String, message: String },
    /// Every problem of a typed schema, a line each with file, line and column.
    #[error("{0}")]
    Schema(String),
    #[error("{0}")]
    Supergraph(#[from] subhub_federation::SupergraphError),
}

impl Config {
    /// Reads the config file (if any) and applies the `SUBHUB_*` variables of `env` that name a
    /// config key. Any other `SUBHUB_*` variable (a secret named by `hs256_secret_env`, a
    /// platform's service link such as `SUBHUB_PORT=tcp://…`) is left alone.
    pub fn load(path: Option<&Path>, env: impl IntoIterator<Item = (String, String)>) -> Result<Self, ConfigError> {
        let text = match path {
            Some(path) => {
                std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_owned(), source })?
            }
            None => String::new(),
        };
        Self::from_text(&text, path, env)
    }

    /// [`Config::load`] of a file's text; `path` names it in messages.
    pub fn from_text(
        text: &str,
        path: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let env: Vec<(String, String)> = env.into_iter().collect();
        let candidates: Vec<(String, String)> =
            env.iter().filter(|(name, _)| name.starts_with(ENV_PREFIX) && name != ENV_CONFIG_FILE).cloned().collect();
        let source = path.map_or_else(|| "(defaults)".to_owned(), |path| path.display().to_string());
        // Parse the file alone first, so its mistakes are reported with line and column.
        let mut config: Config = toml::from_str(text).map_err(|error| parse_error(path, text, &error))?;
        if !candidates.is_empty() {
            let file: toml::Table = toml::from_str(text).map_err(|error| parse_error(path, text, &error))?;
            let mut overrides = Vec::new();
            for (name, value) in candidates {
                if names_a_key(&file, &name, &value)? {
                    overrides.push((name, value));
                }
            }
            if !overrides.is_empty() {
                let mut table = file;
                for (name, value) in &overrides {
                    apply_override(&mut table, name, value)?;
                }
                let vars = overrides.iter().map(|(name, _)| name.as_str()).collect::<Vec<_>>().join(", ");
                config = toml::Value::Table(table)
                    .try_into()
                    .map_err(|error: toml::de::Error| ConfigError::Env { vars, message: error.message().to_owned() })?;
            }
        }
        config.fill_defaults();
        if let Some(auth) = &mut config.auth {
            // Read from the same environment as the overrides, so a caller controls both.
            auth.secret_from_env = auth
                .hs256_secret_env
                .as_ref()
                .and_then(|var| env.iter().find(|(name, _)| name == var).map(|(_, value)| value.clone()));
        }
        config.validate().map_err(|message| ConfigError::Invalid { path: source.clone(), message })?;
        if let Some(schema) = &config.schema {
            let brokers = config.brokers.keys().map(String::as_str).collect();
            let typed = TypedSchema::load(schema, brokers, config.generic_api).map_err(ConfigError::Schema)?;
            config.typed = Some(Arc::new(typed));
        }
        if let Some(federation) = &config.federation {
            let supergraph = Supergraph::load(&federation.supergraph, federation.plan_timeout)?;
            if let Some(message) = supergraph.unknown_subgraph(config.subgraphs.keys()) {
                return Err(ConfigError::Invalid { path: source, message });
            }
            config.supergraph = Some(Arc::new(supergraph));
        }
        Ok(config)
    }

    fn fill_defaults(&mut self) {
        if self.brokers.is_empty() {
            self.brokers.insert(self.default_broker.clone(), BrokerConfig::Memory(MemoryConfig::default()));
        }
    }

    fn validate(&self) -> Result<(), String> {
        for (name, broker) in &self.brokers {
            broker.validate(name).map_err(|error| error.to_string())?;
        }
        for (name, upstream) in &self.upstreams {
            upstream.validate(name)?;
        }
        if let Some(federation) = &self.federation {
            federation.validate()?;
        }
        for (name, subgraph) in &self.subgraphs {
            subgraph.validate(name)?;
        }
        if !self.brokers.contains_key(&self.default_broker) {
            let names = self.brokers.keys().cloned().collect::<Vec<_>>().join(", ");
            return Err(format!(
                "default_broker = \"{}\" names no configured broker (configured: {names}); add [brokers.{}] or change default_broker",
                self.default_broker, self.default_broker
            ));
        }
        if !self.generic_api && self.schema.is_none() && self.upstreams.is_empty() && self.federation.is_none() {
            return Err(
                "generic_api = false leaves nothing to serve: name a typed schema (schema = \"FILE\"), an upstream or a [federation] supergraph"
                    .to_owned(),
            );
        }
        self.limits.validate()?;
        self.http.validate()?;
        if let Some(auth) = &self.auth {
            crate::auth::Auth::from_config(auth)?;
        }
        if let Some(authz) = &self.authz {
            let brokers: Vec<&str> = self.brokers.keys().map(String::as_str).collect();
            crate::authz::Authz::from_config(authz, &brokers)?;
        }
        Ok(())
    }
}

fn parse_error(path: Option<&Path>, text: &str, error: &toml::de::Error) -> ConfigError {
    let message = error.message().trim().to_owned();
    let offset = refine_offset(text, error.span().map_or(0, |span| span.start).min(text.len()), &message);
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    let path = path.map_or_else(|| PathBuf::from("(defaults)"), Path::to_owned);
    // Quote the line, so a wrong value names its key too.
    let message = match text.lines().nth(line - 1).map(str::trim).filter(|l| !l.is_empty()) {
        Some(source) => format!("{message} (in `{source}`)"),
        None => message,
    };
    ConfigError::Parse { path, line, column, message }
}

/// Errors inside a `[brokers.NAME]` table point at its header (the broker kind is chosen by a
/// tag, which loses positions); an unknown field is then looked up in the table's own lines.
fn refine_offset(text: &str, offset: usize, message: &str) -> usize {
    let Some(field) = message.strip_prefix("unknown field `").and_then(|rest| rest.split('`').next()) else {
        return offset;
    };
    let mut position = offset;
    for (index, line) in text[offset..].split_inclusive('\n').enumerate() {
        let trimmed = line.trim_start();
        if index > 0 && trimmed.starts_with('[') {
            break;
        }
        let key = trimmed.split(['=', ' ', '\t']).next().unwrap_or_default().trim_matches('"');
        if key == field {
            return position + (line.len() - trimmed.len());
        }
        position += line.len();
    }
    offset
}

/// The keys at the top of the config file: a variable whose first part names one of them is
/// meant for the hub, and one that then names no key is worth a warning (a typo), not silence.
const TOP_LEVEL_KEYS: [&str; 12] = [
    "listen",
    "default_broker",
    "generic_api",
    "schema",
    "brokers",
    "limits",
    "auth",
    "authz",
    "upstreams",
    "http",
    "federation",
    "subgraphs",
];

/// Whether the variable `name` names a config key: applied alone to the file, it must not be
/// an unknown field. Other mistakes in it (a wrong type) are errors naming the variable.
fn names_a_key(file: &toml::Table, name: &str, value: &str) -> Result<bool, ConfigError> {
    let mut table = file.clone();
    if apply_override(&mut table, name, value).is_err() {
        return Ok(false);
    }
    let Err(error) = toml::Value::Table(table).try_into::<Config>() else {
        return Ok(true);
    };
    let message = error.message();
    if !message.starts_with("unknown field") {
        return Err(ConfigError::Env { vars: name.to_owned(), message: message.to_owned() });
    }
    let first = name[ENV_PREFIX.len()..].split("__").next().unwrap_or_default().to_lowercase();
    if TOP_LEVEL_KEYS.contains(&first.as_str()) {
        tracing::warn!(variable = name, "{name} names no config key ({message}); it is ignored");
    } else {
        tracing::debug!(variable = name, "{name} names no config key; left alone");
    }
    Ok(false)
}

/// `SUBHUB_LIMITS__LINGER=5s` sets `limits.linger`. The value is read as a TOML value when it
/// is one (numbers, booleans) and as a string otherwise.
fn apply_override(table: &mut toml::Table, name: &str, raw: &str) -> Result<(), ConfigError> {
    let path: Vec<String> = name[ENV_PREFIX.len()..].split("__").map(str::to_lowercase).collect();
    let bad = |message: &str| ConfigError::Env { vars: name.to_owned(), message: message.to_owned() };
    if path.iter().any(String::is_empty) {
        return Err(bad("the variable names no key"));
    }
    let value = toml::from_str::<toml::Table>(&format!("v = {raw}"))
        .ok()
        .and_then(|mut t| t.remove("v"))
        .unwrap_or_else(|| toml::Value::String(raw.to_owned()));
    let (last, parents) = path.split_last().ok_or_else(|| bad("the variable names no key"))?;
    let mut current = table;
    for key in parents {
        let entry = current.entry(key.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = entry.as_table_mut().ok_or_else(|| bad(&format!("`{key}` is not a table")))?;
    }
    current.insert(last.clone(), value);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;
    use std::time::Duration;

    fn file(text: &str) -> tempfile_path::TempPath {
        tempfile_path::TempPath::with(text)
    }

    /// A file in the target directory's temp area, removed on drop.
    mod tempfile_path {
        use super::*;
        pub struct TempPath(pub PathBuf);
        impl TempPath {
            pub fn with(text: &str) -> Self {
                static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
                let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let path = std::env::temp_dir().join(format!("subhub-config-{}-{n}.toml", std::process::id()));
                let mut f = std::fs::File::create(&path).unwrap();
                f.write_all(text.as_bytes()).unwrap();
                TempPath(path)
            }
        }
        impl Drop for TempPath {
            fn drop(&mut self) {
                let _ = std::fs::remove_file(&self.0);
            }
        }
    }

    fn no_env() -> Vec<(String, String)> {
        Vec::new()
    }

    #[test]
    fn no_file_means_the_memory_broker_on_port_4000() {
        let config = Config::load(None, no_env()).unwrap();
        assert_eq!(config.listen.to_string(), "127.0.0.1:4000");
        assert_eq!(config.brokers["local"].kind(), "memory");
        assert_eq!(config.limits.max_message_bytes, 1024 * 1024);
        assert_eq!(config.limits.connection_init_timeout, Duration::from_secs(3));
    }

    #[test]
    fn a_full_file_parses() {
        let f = file(
            "listen = \"127.0.0.1:0\"\ndefault_broker = \"mem\"\n[brokers.mem]\nkind = \"memory\"\n[limits]\nlinger = \"250ms\"\nconnection_queue = 8\nslow_consumer = \"close\"\n",
        );
        let config = Config::load(Some(&f.0), no_env()).unwrap();
        assert_eq!(config.limits.linger, Duration::from_millis(250));
        assert_eq!(config.limits.connection_queue, 8);
        assert_eq!(config.limits.slow_consumer, SlowConsumer::Close);
    }

    #[test]
    fn a_supergraph_is_read_with_the_config_and_its_subgraphs_checked() {
        let supergraph = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/federation/supergraph.graphql");
        let federation = format!("[federation]\nsupergraph = {:?}\n", supergraph.display().to_string());
        let f = file(&format!("{federation}[subgraphs.accounts]\ntimeout = \"2s\"\n"));
        let config = Config::load(Some(&f.0), no_env()).unwrap();
        assert!(config.supergraph.is_some());
        let f = file(&format!("{federation}[subgraphs.acounts]\ntimeout = \"2s\"\n"));
        let message = Config::load(Some(&f.0), no_env()).unwrap_err().to_string();
        assert!(
            message.contains("subgraphs.acounts names no subgraph") && message.contains("accounts, inventory"),
            "{message}"
        );
        let not_a_supergraph = file("type Query { a: Int }");
        let f = file(&format!("[federation]\nsupergraph = {:?}\n", not_a_supergraph.0.display().to_string()));
        let message = Config::load(Some(&f.0), no_env()).unwrap_err().to_string();
        assert!(message.contains("not a Federation v2 supergraph"), "{message}");
        let f = file(&format!("{federation}claims_header = \"bad header\"\n"));
        let message = Config::load(Some(&f.0), no_env()).unwrap_err().to_string();
        assert!(message.contains("federation.claims_header"), "{message}");
    }

    #[test]
    fn unknown_keys_name_the_key_file_and_line() {
        let f = file("listen = \"127.0.0.1:0\"\n\n[limits]\nmax_conections = 5\n");
        let message = Config::load(Some(&f.0), no_env()).unwrap_err().to_string();
        assert!(message.contains(&format!("{}:4:1:", f.0.display())), "{message}");
        assert!(message.contains("max_conections"), "{message}");
    }

    #[test]
    fn wrong_types_and_bad_brokers_are_reported() {
        let f = file("[limits]\nlinger = 5\n");
        let message = Config::load(Some(&f.0), no_env()).unwrap_err().to_string();
        assert!(message.contains(":2:"), "{message}");
        let f = file("[brokers.local]\nkind = \"memory\"\n[brokers.cache]\nkind = \"redis\"\nurl = \"redis://127.0.0.1\"\nmod = \"streams\"\n");
        let message = Config::load(Some(&f.0), no_env()).unwrap_err().to_string();
        assert!(message.contains(":6:1:") && message.contains("unknown field `mod`"), "{message}");
        let f = file("[brokers.local]\nkind = \"redis\"\nurl = \"http://x\"\n");
        let message = Config::load(Some(&f.0), no_env()).unwrap_err().to_string();
        assert!(message.contains("brokers.local.url"), "{message}");
        let f = file("[brokers.x]\nkind = \"kafkaa\"\n");
        let message = Config::load(Some(&f.0), no_env()).unwrap_err().to_string();
        assert!(message.contains("kafkaa"), "{message}");
        let f = file("default_broker = \"nope\"\n[brokers.local]\nkind = \"memory\"\n");
        let message = Config::load(Some(&f.0), no_env()).unwrap_err().to_string();
        assert!(message.contains("nope"), "{message}");
    }

    #[test]
    fn environment_overrides_keys() {
        let env = vec![
            ("SUBHUB_LISTEN".to_owned(), "127.0.0.1:5000".to_owned()),
            ("SUBHUB_LIMITS__MAX_CONNECTIONS".to_owned(), "7".to_owned()),
            ("SUBHUB_LIMITS__LINGER".to_owned(), "2s".to_owned()),
            ("SUBHUB_CONFIG".to_owned(), "ignored.toml".to_owned()),
        ];
        let config = Config::load(None, env).unwrap();
        assert_eq!(config.listen.port(), 5000);
        assert_eq!(config.limits.max_connections, 7);
        assert_eq!(config.limits.linger, Duration::from_secs(2));
        let err = Config::load(None, vec![("SUBHUB_LIMITS__MAX_CONNECTIONS".to_owned(), "lots".to_owned())])
            .unwrap_err()
            .to_string();
        assert!(err.contains("SUBHUB_LIMITS__MAX_CONNECTIONS"), "{err}");
    }

    /// Variables that name no key are left alone: the secret `hs256_secret_env` names, a
    /// platform's service link, a typo under a known table (which is logged).
    #[test]
    fn variables_that_name_no_key_are_left_alone() {
        let f = file("[auth]\nhs256_secret_env = \"SUBHUB_JWT_SECRET\"\n");
        let env = vec![
            ("SUBHUB_JWT_SECRET".to_owned(), "a-secret-of-enough-bytes".to_owned()),
            ("SUBHUB_PORT".to_owned(), "tcp://10.0.0.7:4000".to_owned()),
            ("SUBHUB_PORT_4000_TCP_ADDR".to_owned(), "10.0.0.7".to_owned()),
            ("SUBHUB_LIMITS__MAX_CONECTIONS".to_owned(), "5".to_owned()),
            ("SUBHUB_LIMITZ__X".to_owned(), "1".to_owned()),
            ("SUBHUB_LIMITS__LINGER".to_owned(), "2s".to_owned()),
        ];
        let config = Config::load(Some(&f.0), env);
        let config = config.unwrap();
        assert_eq!(config.limits.linger, Duration::from_secs(2));
        assert_eq!(config.limits.max_connections, Limits::default().max_connections);
    }

    /// The list of top-level keys the warning relies on is the config's own.
    #[test]
    fn top_level_keys_are_the_configs() {
        let message = toml::from_str::<Config>("nope = 1").unwrap_err().message().to_owned();
        let expected: Vec<String> = message
            .split("expected one of ")
            .nth(1)
            .unwrap()
            .split(", ")
            .map(|key| key.trim().trim_matches('`').to_owned())
            .collect();
        let mut ours: Vec<String> = TOP_LEVEL_KEYS.iter().map(|k| k.to_string()).collect();
        ours.sort();
        let mut expected = expected;
        expected.sort();
        assert_eq!(ours, expected);
    }

    mod properties {
        use super::super::*;
        use proptest::prelude::*;

        fn value() -> impl Strategy<Value = String> {
            prop_oneof![
                any::<i64>().prop_map(|n| n.to_string()),
                any::<bool>().prop_map(|b| b.to_string()),
                "[a-z0-9.:/ ]{0,12}".prop_map(|s| format!("\"{s}\"")),
                Just("\"3s\"".to_owned()),
                Just("[\"a\", 1]".to_owned()),
                Just("{ x = 1 }".to_owned()),
                any::<String>(),
            ]
        }

        fn key() -> impl Strategy<Value = String> {
            prop_oneof![
                proptest::sample::select(vec![
                    "listen",
                    "default_broker",
                    "generic_api",
                    "kind",
                    "url",
                    "mode",
                    "exchange",
                    "max_connections",
                    "linger",
                    "keepalive",
                    "cors_origins",
                    "hs256_secret",
                    "required",
                    "leeway",
                    "max_aliases",
                    "subscribe_rate",
                    "bootstrap_servers",
                    "options",
                    "connection_queue",
                    "slow_consumer",
                ])
                .prop_map(str::to_owned),
                "[a-z_]{1,8}",
            ]
        }

        fn table() -> impl Strategy<Value = String> {
            prop_oneof![
                Just(String::new()),
                proptest::sample::select(vec![
                    "[limits]",
                    "[auth]",
                    "[http]",
                    "[brokers.local]",
                    "[brokers.r]",
                    "[upstreams.u]",
                    "[[authz]]",
                ])
                .prop_map(str::to_owned),
            ]
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(500))]

            /// Any text at all: an error or a config, never a panic.
            #[test]
            fn any_text_loads_or_is_refused(text in any::<String>()) {
                let _ = Config::from_text(&text, None, Vec::new());
            }

            /// Files made of the config's own tables and keys with values of every type, and
            /// `SUBHUB_*` variables naming anything: an error or a config, never a panic.
            #[test]
            fn config_shaped_files_load_or_are_refused(
                lines in prop::collection::vec((table(), key(), value()), 0..12),
                env in prop::collection::vec(("SUBHUB_[A-Z_]{1,24}", "[ -~]{0,16}"), 0..4),
            ) {
                let text: String = lines.iter().map(|(table, key, value)| format!("{table}\n{key} = {value}\n")).collect();
                let env: Vec<(String, String)> = env;
                if let Ok(config) = Config::from_text(&text, Some(Path::new("fuzz.toml")), env) {
                    prop_assert!(config.limits.max_connections >= 1);
                    prop_assert!(config.brokers.contains_key(&config.default_broker));
                }
            }
        }
    }
}

//! Every config in examples/ parses and validates, and `memory.toml` lists every limit with its
//! default.

use std::path::Path;

use subhub::config::Limits;
use subhub::Config;

/// What examples/auth.toml tells its reader to export.
fn env() -> Vec<(String, String)> {
    vec![("SUBHUB_JWT_SECRET".to_owned(), "change-me-change-me".to_owned())]
}

#[test]
fn every_example_config_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut checked = 0;
    let mut paths: Vec<_> =
        std::fs::read_dir(&dir).expect("examples/").map(|entry| entry.expect("entry").path()).collect();
    // An example of its own folder (examples/purchases/) has its config there.
    let folders: Vec<_> = paths.iter().filter(|path| path.is_dir()).cloned().collect();
    for folder in folders {
        paths.extend(std::fs::read_dir(folder).expect("example folder").map(|entry| entry.expect("entry").path()));
    }
    // Paths in configs are relative to where the hub starts: the repository's root.
    std::env::set_current_dir(env!("CARGO_MANIFEST_DIR")).expect("cd");
    for path in paths {
        if path.extension().is_some_and(|e| e == "toml") {
            if let Err(error) = Config::load(Some(&path), env()) {
                panic!("{error}");
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no example configs found");
}

#[test]
fn memory_toml_lists_every_limit_at_its_default() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples/memory.toml");
    let config = Config::load(Some(&path), Vec::new()).expect("memory.toml");
    assert_eq!(format!("{:?}", config.limits), format!("{:?}", Limits::default()), "a value differs from its default");
    let text = std::fs::read_to_string(&path).expect("read");
    let table: toml::Table = toml::from_str(&text).expect("toml");
    let listed = table["limits"].as_table().expect("[limits]");
    let debug = format!("{:?}", Limits::default());
    let fields: Vec<&str> = debug
        .trim_start_matches("Limits {")
        .split(", ")
        .filter_map(|field| field.trim().split(':').next())
        .filter(|name| !name.is_empty() && name.chars().all(|c| c.is_ascii_lowercase() || c == '_'))
        .collect();
    assert!(fields.len() > 10, "{fields:?}");
    for field in fields {
        assert!(listed.contains_key(field), "examples/memory.toml does not list limits.{field}");
    }
}

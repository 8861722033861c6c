//! Every config in examples/ parses and validates.

use std::path::Path;

use subhub::Config;

#[test]
fn every_example_config_loads() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("examples");
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("examples/") {
        let path = entry.expect("entry").path();
        if path.extension().is_some_and(|e| e == "toml") {
            if let Err(error) = Config::load(Some(&path), Vec::new()) {
                panic!("{error}");
            }
            checked += 1;
        }
    }
    assert!(checked > 0, "no example configs found");
}

//! The planner's plans, stored: for each supergraph in `tests/plans/*/` and each operation of
//! its `operations.graphql`, the plan the executor runs, as `plans.txt` holds it. A planner
//! upgrade (or a fork) that plans anything differently fails here, and the difference is
//! there to read. `UPDATE_PLANS=1 cargo test -p subhub-federation --test plans` writes the
//! new plans after they are checked by hand.

use std::fmt::Write as _;
use std::path::Path;
use std::time::Duration;

use graphql_tools::parser::query::{Definition, OperationDefinition};
use subhub_federation::Supergraph;

fn plans_of(dir: &Path) -> String {
    let sdl = std::fs::read_to_string(dir.join("supergraph.graphql")).expect("a supergraph");
    let supergraph = Supergraph::from_sdl(&sdl, Duration::from_secs(30)).expect("the supergraph loads");
    let text = std::fs::read_to_string(dir.join("operations.graphql")).expect("operations");
    let document = graphql_tools::parser::parse_query(&text).expect("operations parse").into_static();
    let mut out = String::new();
    for definition in &document.definitions {
        let name = match definition {
            Definition::Operation(OperationDefinition::Query(q)) => q.name.clone(),
            Definition::Operation(OperationDefinition::Mutation(m)) => m.name.clone(),
            Definition::Operation(OperationDefinition::Subscription(s)) => s.name.clone(),
            _ => continue,
        };
        let name = name.expect("fixture operations are named");
        let plan = supergraph.planner.plan(&document, Some(&name)).unwrap_or_else(|e| panic!("{name}: {e}"));
        let _ = write!(out, "## {name}\n{plan}\n");
    }
    out
}

#[test]
fn plans_are_the_stored_ones() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/plans");
    let mut dirs: Vec<_> = std::fs::read_dir(&root).expect("tests/plans").map(|e| e.expect("entry").path()).collect();
    dirs.sort();
    let mut changed = Vec::new();
    for dir in dirs.iter().filter(|d| d.is_dir()) {
        let plans = plans_of(dir);
        let stored_path = dir.join("plans.txt");
        if std::env::var_os("UPDATE_PLANS").is_some() {
            std::fs::write(&stored_path, &plans).expect("write plans.txt");
            continue;
        }
        let stored = std::fs::read_to_string(&stored_path).unwrap_or_default();
        let sections =
            |text: &str| -> Vec<String> { text.split("## ").filter(|s| !s.is_empty()).map(str::to_owned).collect() };
        let (stored, now) = (sections(&stored), sections(&plans));
        for section in &now {
            let name = section.lines().next().unwrap_or_default();
            match stored.iter().find(|s| s.lines().next() == Some(name)) {
                Some(before) if before == section => {}
                Some(before) => {
                    changed.push(format!("{}: {name}\n--- stored\n{before}--- now\n{section}", dir.display()))
                }
                None => changed.push(format!("{}: {name} is new\n{section}", dir.display())),
            }
        }
        for section in stored.iter().filter(|s| !now.iter().any(|n| n.lines().next() == s.lines().next())) {
            changed.push(format!("{}: {} is gone", dir.display(), section.lines().next().unwrap_or_default()));
        }
    }
    assert!(changed.is_empty(), "plans changed:\n{}", changed.join("\n"));
}

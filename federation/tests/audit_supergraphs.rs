//! Our composition against the federation gateway audit's (../shared/federation-audit, composed
//! there by Apollo's composition): for each of its suites, the suite's running subgraphs are
//! composed from their `{ _service { sdl } }` and the result compared by meaning (types, fields,
//! arguments, `join__` directives by subgraph name) with the supergraph the audit serves, and
//! read by the planner. Runs only where the audit and node are; says so loudly when it skips.
//!
//! The audit is looked for beside the repository (`../shared/federation-audit`), or where
//! `SUBHUB_FEDERATION_AUDIT` says. `SUBHUB_AUDIT_WORK` names where the audit's npm packages are installed (default: a folder in
//! the temp dir, reused across runs).

mod support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use subhub_federation::compose::{compose, fetch::service_sdl, SubgraphSdl};

/// Suites whose supergraph ours matches today; fewer is a regression.
const MATCHING: usize = 37;

fn audit_dir() -> PathBuf {
    match std::env::var_os("SUBHUB_FEDERATION_AUDIT") {
        Some(dir) => PathBuf::from(dir),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/federation-audit"),
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The audit's server on a free port, from a copy of its sources with its npm packages.
fn start_audit(audit: &Path) -> (Server, u16) {
    let work = std::env::var_os("SUBHUB_AUDIT_WORK")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("subhub-compose-audit"));
    std::fs::create_dir_all(&work).expect("the audit's work folder");
    let copy = Command::new("cp")
        .arg("-r")
        .args(["src", "package.json", "package-lock.json", "polyfill.mjs"].map(|name| audit.join(name)))
        .arg(&work)
        .status()
        .expect("cp");
    assert!(copy.success(), "copy the audit into {}", work.display());
    let _ = Command::new("chmod").arg("-R").arg("u+w").arg(&work).status();
    if !work.join("node_modules/tsx").exists() {
        let status = Command::new("npm")
            .args(["ci", "--no-audit", "--no-fund"])
            .current_dir(&work)
            .stdout(Stdio::null())
            .status()
            .expect("npm ci");
        assert!(status.success(), "npm ci for the audit in {}", work.display());
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("port").port();
    let child = Command::new("npx")
        .args(["tsx", "src/cli.ts", "serve", "--port", &port.to_string()])
        .env("NODE_OPTIONS", format!("--import {}", work.join("polyfill.mjs").display()))
        .current_dir(&work)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start the audit's server");
    (Server(child), port)
}

async fn get(url: &str) -> Option<String> {
    let response = reqwest::get(url).await.ok()?;
    response.status().is_success().then_some(())?;
    response.text().await.ok()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn our_supergraphs_match_the_audits() {
    let audit = audit_dir();
    let in_ci = std::env::var_os("CI").is_some();
    if !audit.join("src/test-suites").is_dir() {
        eprintln!("SKIPPED: no federation audit at {}; the composition is not compared with it", audit.display());
        return;
    }
    if Command::new("node").arg("--version").output().is_err() {
        assert!(!in_ci, "node is required in CI to compare with the federation audit");
        eprintln!("SKIPPED: node is not installed; comparing with the federation audit needs node and npm");
        return;
    }
    let (_server, port) = start_audit(&audit);
    let mut suites: Vec<String> = std::fs::read_dir(audit.join("src/test-suites"))
        .expect("suites")
        .filter_map(|entry| Some(entry.ok()?.file_name().to_str()?.to_owned()))
        .collect();
    suites.sort();
    let base = format!("http://localhost:{port}");
    let deadline = Instant::now() + Duration::from_secs(120);
    while get(&format!("{base}/{}/subgraphs", suites[0])).await.is_none() {
        assert!(Instant::now() < deadline, "the audit's server did not start");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let mut matching = Vec::new();
    for suite in &suites {
        let listed = get(&format!("{base}/{suite}/subgraphs")).await.expect("the suite's subgraphs");
        let listed: serde_json::Value = serde_json::from_str(&listed).expect("subgraphs JSON");
        let mut subgraphs = Vec::new();
        for subgraph in listed.as_array().expect("a list") {
            let (name, url) = (subgraph["name"].as_str().expect("name"), subgraph["url"].as_str().expect("url"));
            let sdl = service_sdl(name, url, Duration::from_secs(30), 1 << 20).await.expect("the subgraph's SDL");
            subgraphs.push(SubgraphSdl { name: name.to_owned(), url: url.to_owned(), sdl });
        }
        let theirs = get(&format!("{base}/{suite}/supergraph")).await.expect("the audit's supergraph");
        let ours = match compose(&subgraphs) {
            Ok(composed) => composed.supergraph,
            Err(error) => {
                println!("{suite}: does not compose: {}", error.to_string().replace('\n', " "));
                continue;
            }
        };
        let planner = graphql_tools::parser::parse_schema(&ours).map(|parsed| {
            hive_router_query_planner::planner::Planner::new_from_supergraph(&parsed.into_static(), Default::default())
        });
        assert!(matches!(planner, Ok(Ok(_))), "{suite}: the planner does not read our supergraph:\n{ours}");
        let (ours, theirs) =
            (support::facts::facts(&ours).expect("ours"), support::facts::facts(&theirs).expect("theirs"));
        if ours == theirs {
            matching.push(suite.clone());
            continue;
        }
        let missing: BTreeSet<_> = theirs.difference(&ours).collect();
        let extra: BTreeSet<_> = ours.difference(&theirs).collect();
        println!("{suite}: differs: missing {missing:?}, extra {extra:?}");
    }
    println!("{} of {} audit supergraphs match", matching.len(), suites.len());
    assert!(matching.len() >= MATCHING, "{} of {} match, fewer than {MATCHING}", matching.len(), suites.len());
}

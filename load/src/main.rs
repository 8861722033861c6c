//! `subhub-load`: run a scenario against a server, serve the raw fan-out floor, or run a mock Kafka
//! cluster for runs that publish into Kafka.

use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Parser, Subcommand};
use subhub_load::attack::AttackOptions;
use subhub_load::options::RunOptions;
use subhub_load::soak::SoakOptions;
use subhub_load::{raw_server, report, run};

#[derive(Parser)]
#[command(name = "subhub-load", version, about = "Load generator for GraphQL subscription servers")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run a scenario against a graphql-transport-ws server.
    Run(Box<RunOptions>),
    /// Serve bare fan-out (pre-built frames, no GraphQL): the floor to compare with.
    RawServer {
        #[arg(long, default_value = "127.0.0.1:4100")]
        listen: SocketAddr,
        #[arg(long, default_value = "topic")]
        topic_variable: String,
    },
    /// Attack a hub as a hostile client would, until the time is up; print what it answered.
    Attack(Box<AttackOptions>),
    /// Soak a hub: churn, stalled and steady clients for a long run (faults come from
    /// load/soak.sh); then check nothing is left open and memory came back.
    Soak(Box<SoakOptions>),
    /// Run librdkafka's mock Kafka cluster (the real protocol on a loopback port) with the given
    /// topics, print its bootstrap servers, and serve until killed: Kafka runs without a Kafka.
    KafkaMock {
        /// Topics to create, comma-separated.
        #[arg(long, default_value = "bench", value_delimiter = ',')]
        topics: Vec<String>,
        #[arg(long, default_value_t = 1)]
        partitions: i32,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Run(options) => run_scenario(*options),
        Command::RawServer { listen, topic_variable } => tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(anyhow::Error::from)
            .and_then(|runtime| runtime.block_on(raw_server::serve(listen, topic_variable))),
        Command::KafkaMock { topics, partitions } => kafka_mock(&topics, partitions),
        Command::Attack(options) => run_attack(*options),
        Command::Soak(options) => run_soak(*options),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("subhub-load: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn kafka_mock(topics: &[String], partitions: i32) -> anyhow::Result<()> {
    let cluster = rdkafka::mocking::MockCluster::new(1).context("mock Kafka cluster")?;
    for topic in topics {
        cluster.create_topic(topic, partitions, 1).with_context(|| format!("topic {topic}"))?;
    }
    println!("{}", cluster.bootstrap_servers());
    std::io::Write::flush(&mut std::io::stdout())?;
    loop {
        std::thread::park();
    }
}

fn run_attack(options: AttackOptions) -> anyhow::Result<()> {
    let kind = options.kind;
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let tally = runtime.block_on(subhub_load::attack::attack(options))?;
    println!("{}", tally.summary(kind));
    Ok(())
}

fn run_soak(options: SoakOptions) -> anyhow::Result<()> {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let summary = runtime.block_on(tokio::task::LocalSet::new().run_until(subhub_load::soak::soak(options)))?;
    println!("{}", serde_json::to_string_pretty(&summary)?);
    Ok(())
}

fn run_scenario(options: RunOptions) -> anyhow::Result<()> {
    let (json, out, svg) = (options.json, options.out.clone(), options.svg.clone());
    let progress = options.duration.as_secs() >= 5 && !json && std::io::IsTerminal::is_terminal(&std::io::stderr());
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let report = runtime.block_on(tokio::task::LocalSet::new().run_until(run::run(options, progress)))?;
    let text = serde_json::to_string_pretty(&report)?;
    if json {
        println!("{text}");
    } else {
        print!("{}", report::table(&report));
    }
    if let Some(path) = out {
        std::fs::write(&path, &text).map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    if let Some(path) = svg {
        std::fs::write(&path, report::svg(&report))
            .map_err(|e| anyhow::anyhow!("cannot write {}: {e}", path.display()))?;
    }
    Ok(())
}

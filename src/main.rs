//! The `subhub` command: `subhub [serve] [--config FILE] [--listen ADDR]`, `subhub check`,
//! `subhub compose` and `subhub subgraph-sdl` for federation, and `subhub token` for trying a
//! config's `[auth]` by hand.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use subhub::{termination_signal, Config, Server};

#[derive(Parser)]
#[command(name = "subhub", version, about = "A real-time GraphQL subscription hub")]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the hub (the default).
    Serve(ServeArgs),
    /// Validate a config file and exit.
    Check(ConfigArg),
    /// Print the supergraph composed from `[subgraphs.*]` and the typed schema (as `[federation] self`).
    Compose(ConfigArg),
    /// Print the typed schema as a Federation v2 subgraph SDL, for rover, the Hive CLI or wgc.
    SubgraphSdl(ConfigArg),
    /// Sign a token with the config's HS256 secret, for trying `[auth]` and `[authz]` by hand.
    Token(TokenArgs),
}

#[derive(Args, Clone)]
struct TokenArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// How long the token is valid.
    #[arg(long, default_value = "1h", value_parser = humantime::parse_duration)]
    ttl: std::time::Duration,
    /// The claims, a JSON object: '{"sub": "ada", "role": "admin"}'.
    claims: String,
}

#[derive(Args, Clone)]
struct ConfigArg {
    /// TOML config file; without one the hub serves the built-in schema on the memory broker.
    #[arg(long, env = "SUBHUB_CONFIG")]
    config: Option<PathBuf>,
}

#[derive(Args, Clone)]
struct ServeArgs {
    #[command(flatten)]
    config: ConfigArg,
    /// Address to listen on (overrides `listen` in the config).
    #[arg(long)]
    listen: Option<SocketAddr>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let result = match cli.command {
        Some(Command::Check(args)) => check(&args),
        Some(Command::Compose(args)) => compose(&args),
        Some(Command::SubgraphSdl(args)) => subgraph_sdl(&args),
        Some(Command::Token(args)) => token(&args),
        Some(Command::Serve(args)) => serve(args),
        None => serve(cli.serve),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("subhub: {error:#}");
            ExitCode::FAILURE
        }
    }
}

fn load(config: &ConfigArg) -> anyhow::Result<Config> {
    Ok(Config::load(config.config.as_deref(), std::env::vars())?)
}

fn check(args: &ConfigArg) -> anyhow::Result<()> {
    let config = load(args)?;
    println!(
        "config ok: listen {}, brokers: {}",
        config.listen,
        config.brokers.keys().cloned().collect::<Vec<_>>().join(", ")
    );
    if let Some(typed) = &config.typed {
        println!(
            "schema ok: {}: {} subscription fields, {} mutation fields",
            typed.path.display(),
            typed.subscriptions(),
            typed.mutations()
        );
    }
    match &config.authz {
        Some(authz) => println!("authz: {} rules; what no rule allows is refused", authz.rules.len()),
        None => println!("authz: none; every topic is open to every client"),
    }
    Ok(())
}

fn subgraph_sdl(args: &ConfigArg) -> anyhow::Result<()> {
    let config = load(args)?;
    let typed = config.typed.context("the config names no typed schema: add schema = \"FILE\"")?;
    print!("{}", typed.subgraph_sdl().map_err(anyhow::Error::msg)?);
    Ok(())
}

fn compose(args: &ConfigArg) -> anyhow::Result<()> {
    use subhub_federation::compose::{self, SubgraphSdl};
    let config = load(args)?;
    let self_name = config.federation.as_ref().map_or("subhub", |federation| federation.self_name.as_str());
    let runtime =
        tokio::runtime::Builder::new_current_thread().enable_all().build().context("cannot start the runtime")?;
    let mut subgraphs = runtime.block_on(futures_util::future::try_join_all(config.subgraphs.iter().map(
        |(name, subgraph)| async move {
            let url = subgraph.url.clone().with_context(|| {
                format!("[subgraphs.{name}] has no `url`: the supergraph tells the gateway where each subgraph is")
            })?;
            let sdl = match &subgraph.sdl {
                Some(path) => std::fs::read_to_string(path)
                    .with_context(|| format!("subgraphs.{name}.sdl: cannot read {}", path.display()))?,
                None => compose::fetch::service_sdl(name, &url, subgraph.timeout, subgraph.max_response_bytes).await?,
            };
            anyhow::Ok(SubgraphSdl { name: name.clone(), url, sdl })
        },
    )))?;
    if let Some(typed) = &config.typed {
        anyhow::ensure!(
            !config.subgraphs.contains_key(self_name),
            "[subgraphs.{self_name}] names the hub's own subgraph ([federation] self = \"{self_name}\"), whose SDL is the typed schema: give the other subgraph another name"
        );
        let sdl = typed.subgraph_sdl().map_err(anyhow::Error::msg)?;
        subgraphs.push(SubgraphSdl {
            name: self_name.to_owned(),
            url: format!("http://{}/graphql", config.listen),
            sdl,
        });
    }
    let composed = compose::compose(&subgraphs)?;
    for warning in &composed.warnings {
        eprintln!("subhub: composition warning: {warning}");
    }
    print!("{}", composed.supergraph);
    Ok(())
}

fn token(args: &TokenArgs) -> anyhow::Result<()> {
    let config = load(&args.config)?;
    let auth = config.auth.context("the config has no [auth] table")?;
    let secret = auth
        .hs256_secret
        .or(auth.secret_from_env)
        .context("subhub token signs with an HS256 secret: set hs256_secret or hs256_secret_env in [auth]")?;
    let claims: serde_json::Value = serde_json::from_str(&args.claims).context("the claims are not JSON")?;
    let serde_json::Value::Object(mut claims) = claims else { anyhow::bail!("the claims must be a JSON object") };
    claims.insert("exp".into(), (subhub::auth::now() + args.ttl.as_secs()).into());
    if let Some(issuer) = auth.issuer {
        claims.entry("iss").or_insert(issuer.into());
    }
    if let Some(audience) = auth.audience {
        claims.entry("aud").or_insert(audience.into());
    }
    println!("{}", subhub::auth::sign_hs256(secret.as_bytes(), &serde_json::Value::Object(claims)));
    Ok(())
}

fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let mut config = load(&args.config)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let runtime =
        tokio::runtime::Builder::new_multi_thread().enable_all().build().context("cannot start the runtime")?;
    runtime.block_on(async {
        let server = Server::bind(config).await?;
        server.run(termination_signal()).await?;
        anyhow::Ok(())
    })
}

//! The `subhub` command: `subhub [serve] [--config FILE] [--listen ADDR]`, `subhub check`, and
//! `subhub token` for trying a config's `[auth]` by hand.

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

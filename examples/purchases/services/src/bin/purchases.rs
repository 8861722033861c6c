//! `purchases [--listen 127.0.0.1:4101] [--sdl]`: the purchases subgraph.

use subhub_example_services::{purchases, sdl, serve, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let schema = purchases::schema();
    match Command::from_args("127.0.0.1:4101")? {
        Command::PrintSdl => print!("{}", sdl(&schema).await?),
        Command::Serve(listen) => {
            let listener = tokio::net::TcpListener::bind(&listen).await?;
            eprintln!("purchases subgraph on http://{}/graphql", listener.local_addr()?);
            serve(purchases::router(schema), listener).await?;
        }
    }
    Ok(())
}

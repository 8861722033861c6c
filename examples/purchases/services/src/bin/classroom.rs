//! `classroom [--listen 127.0.0.1:4102] [--sdl]`: the classroom subgraph.

use subhub_example_services::{classroom, router, sdl, serve, Command};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let schema = classroom::schema();
    match Command::from_args("127.0.0.1:4102")? {
        Command::PrintSdl => print!("{}", sdl(&schema).await?),
        Command::Serve(listen) => {
            let listener = tokio::net::TcpListener::bind(&listen).await?;
            eprintln!("classroom subgraph on http://{}/graphql", listener.local_addr()?);
            serve(router(schema), listener).await?;
        }
    }
    Ok(())
}

//! Four small Federation v2 subgraphs (accounts, products, reviews, inventory) served over HTTP
//! on port 0 by async-graphql, each counting and recording the requests it gets, and able to
//! be slowed, held or padded by the test. `tests/fixtures/federation/supergraph.graphql` is
//! their composition (see `tests/fixtures/federation/README.md` to compose it again).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_graphql::{ComplexObject, Context, EmptySubscription, Object, Schema, SimpleObject, ID};
use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::{Json, Router};
use serde_json::Value;
use tokio::sync::watch;

pub const SUPERGRAPH: &str = include_str!("../fixtures/federation/supergraph.graphql");

/// What a subgraph saw of one request.
#[derive(Clone, Debug)]
pub struct Seen {
    pub body: Value,
    pub headers: HeaderMap,
    pub arrived: Instant,
    /// When its answer was ready (set once it is).
    pub answered: Option<Instant>,
}

/// How a subgraph misbehaves, as the test sets it.
#[derive(Default)]
pub struct Faults {
    /// Answer after this long.
    pub delay: Option<Duration>,
    /// Answer only once this is true.
    pub gate: Option<watch::Receiver<bool>>,
    /// Answer with this many bytes of padding in `extensions`.
    pub pad: usize,
    /// Answer with this instead of the response.
    pub answer: Option<Answer>,
}

/// Given the request's body and the subgraph's response, the response to send.
pub type Answer = Arc<dyn Fn(&Value, Value) -> Value + Send + Sync>;

pub struct Recorder {
    pub requests: AtomicUsize,
    pub seen: Mutex<Vec<Seen>>,
    pub faults: Mutex<Faults>,
}

pub struct Subgraph {
    pub name: &'static str,
    pub addr: SocketAddr,
    pub recorder: Arc<Recorder>,
}

impl Subgraph {
    pub fn url(&self) -> String {
        format!("http://{}/graphql", self.addr)
    }

    pub fn requests(&self) -> usize {
        self.recorder.requests.load(Ordering::SeqCst)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.recorder.seen.lock().unwrap().clone()
    }

    /// Requests whose query selects `_entities`.
    pub fn entity_requests(&self) -> usize {
        self.seen().iter().filter(|seen| seen.body["query"].as_str().is_some_and(|q| q.contains("_entities"))).count()
    }

    pub fn set_faults(&self, faults: Faults) {
        *self.recorder.faults.lock().unwrap() = faults;
    }
}

type Executor = Arc<
    dyn Fn(async_graphql::Request) -> futures_util::future::BoxFuture<'static, async_graphql::Response> + Send + Sync,
>;

async fn serve(name: &'static str, execute: Executor) -> Subgraph {
    let recorder =
        Arc::new(Recorder { requests: AtomicUsize::new(0), seen: Mutex::new(Vec::new()), faults: Mutex::default() });
    let app = Router::new().route("/graphql", post(handle)).with_state((execute, recorder.clone()));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind a subgraph");
    let addr = listener.local_addr().expect("subgraph address");
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Subgraph { name, addr, recorder }
}

async fn handle(
    State((execute, recorder)): State<(Executor, Arc<Recorder>)>,
    headers: HeaderMap,
    Json(body): Json<Value>,
) -> Response {
    recorder.requests.fetch_add(1, Ordering::SeqCst);
    let index = {
        let mut seen = recorder.seen.lock().unwrap();
        seen.push(Seen { body: body.clone(), headers, arrived: Instant::now(), answered: None });
        seen.len() - 1
    };
    let (delay, gate, pad, answer) = {
        let faults = recorder.faults.lock().unwrap();
        (faults.delay, faults.gate.clone(), faults.pad, faults.answer.clone())
    };
    if let Some(delay) = delay {
        tokio::time::sleep(delay).await;
    }
    if let Some(mut gate) = gate {
        let _ = gate.wait_for(|open| *open).await;
    }
    let request: async_graphql::Request = match serde_json::from_value(body.clone()) {
        Ok(request) => request,
        Err(_) => return (axum::http::StatusCode::BAD_REQUEST, "not a GraphQL request").into_response(),
    };
    let mut response = serde_json::to_value(execute(request).await).expect("a response");
    if pad > 0 {
        response["extensions"] = serde_json::json!({ "padding": "x".repeat(pad) });
    }
    if let Some(answer) = answer {
        response = answer(&body, response);
    }
    recorder.seen.lock().unwrap()[index].answered = Some(Instant::now());
    Json(response).into_response()
}

fn executor<Q, M>(schema: Schema<Q, M, EmptySubscription>) -> Executor
where
    Q: async_graphql::ObjectType + 'static,
    M: async_graphql::ObjectType + 'static,
{
    Arc::new(move |request| {
        let schema = schema.clone();
        Box::pin(async move { schema.execute(request).await })
    })
}

/// The four subgraphs, each on its own port.
pub struct Subgraphs {
    pub accounts: Subgraph,
    pub products: Subgraph,
    pub reviews: Subgraph,
    pub inventory: Subgraph,
}

impl Subgraphs {
    pub async fn start() -> Self {
        Subgraphs {
            accounts: serve("accounts", executor(accounts::schema())).await,
            products: serve("products", executor(products::schema())).await,
            reviews: serve("reviews", executor(reviews::schema())).await,
            inventory: serve("inventory", executor(inventory::schema())).await,
        }
    }

    /// `[federation]` and a `[subgraphs.NAME] url` for each, with `extra` TOML after them
    /// (`extra` may add keys to a subgraph's table by naming it again: TOML forbids that, so
    /// `settings` gives per-subgraph lines instead).
    pub fn config(&self, settings: &[(&str, &str)], extra: &str) -> String {
        let path = std::env::temp_dir().join(format!("subhub-supergraph-{}.graphql", std::process::id()));
        std::fs::write(&path, SUPERGRAPH).expect("write the supergraph");
        let mut text = format!("[federation]\nsupergraph = {:?}\n", path.display().to_string());
        for subgraph in [&self.accounts, &self.products, &self.reviews, &self.inventory] {
            text.push_str(&format!("[subgraphs.{}]\nurl = {:?}\n", subgraph.name, subgraph.url()));
            for (name, line) in settings {
                if *name == subgraph.name {
                    text.push_str(line);
                    text.push('\n');
                }
            }
        }
        text.push_str(extra);
        text
    }

    /// Every subgraph's SDL as Federation v2 subgraph SDL, by name.
    pub fn sdl() -> Vec<(&'static str, String)> {
        let options = async_graphql::SDLExportOptions::new().federation();
        vec![
            ("accounts", accounts::schema().sdl_with_options(options)),
            ("products", products::schema().sdl_with_options(options)),
            ("reviews", reviews::schema().sdl_with_options(options)),
            ("inventory", inventory::schema().sdl_with_options(options)),
        ]
    }
}

pub mod accounts {
    use super::*;

    #[derive(SimpleObject, Clone)]
    pub struct User {
        pub id: ID,
        pub name: String,
        /// Reviews provides it too.
        #[graphql(shareable)]
        pub username: String,
    }

    pub fn user(id: &str) -> Option<User> {
        let (name, username) = match id {
            "1" => ("Ada Lovelace", "@ada"),
            "2" => ("Alan Turing", "@complete"),
            _ => return None,
        };
        Some(User { id: ID(id.into()), name: name.into(), username: username.into() })
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn me(&self) -> Option<User> {
            user("1")
        }

        async fn users(&self) -> Vec<User> {
            ["1", "2"].into_iter().filter_map(user).collect()
        }

        #[graphql(entity)]
        async fn find_user_by_id(&self, id: ID) -> Option<User> {
            user(&id)
        }
    }

    /// Names created, in the order the mutations ran.
    #[derive(Default)]
    pub struct Created(pub Mutex<Vec<String>>);

    pub struct Mutation;

    #[Object]
    impl Mutation {
        async fn create_user(&self, ctx: &Context<'_>, name: String) -> User {
            let created = ctx.data_unchecked::<Arc<Created>>();
            let mut names = created.0.lock().unwrap();
            names.push(name.clone());
            User { id: ID(format!("new-{}", names.len())), username: format!("@{}", name.to_lowercase()), name }
        }
    }

    pub fn schema() -> Schema<Query, Mutation, EmptySubscription> {
        Schema::build(Query, Mutation, EmptySubscription)
            .enable_federation()
            .data(Arc::new(Created::default()))
            .finish()
    }
}

pub mod products {
    use super::*;

    #[derive(SimpleObject, Clone)]
    pub struct Product {
        pub upc: String,
        pub name: String,
        pub price: i32,
        pub weight: i32,
    }

    pub fn all() -> Vec<Product> {
        vec![
            Product { upc: "top-1".into(), name: "Trilby".into(), price: 11, weight: 100 },
            Product { upc: "top-2".into(), name: "Fedora".into(), price: 22, weight: 200 },
            Product { upc: "top-3".into(), name: "Boater".into(), price: 33, weight: 300 },
        ]
    }

    pub struct Query;

    #[Object]
    impl Query {
        async fn top_products(&self, #[graphql(default = 5)] first: i32) -> Vec<Product> {
            all().into_iter().take(first.max(0) as usize).collect()
        }

        #[graphql(entity)]
        async fn find_product_by_upc(&self, upc: String) -> Option<Product> {
            all().into_iter().find(|p| p.upc == upc)
        }
    }

    pub fn schema() -> Schema<Query, async_graphql::EmptyMutation, EmptySubscription> {
        Schema::build(Query, async_graphql::EmptyMutation, EmptySubscription).enable_federation().finish()
    }
}

pub mod reviews {
    use super::*;

    #[derive(SimpleObject, Clone)]
    pub struct Review {
        pub id: ID,
        pub body: String,
        #[graphql(provides = "username")]
        pub author: User,
        pub product: Product,
    }

    #[derive(SimpleObject, Clone)]
    #[graphql(complex)]
    pub struct User {
        pub id: ID,
        #[graphql(external)]
        pub username: String,
    }

    #[ComplexObject]
    impl User {
        async fn reviews(&self) -> Vec<Review> {
            all().into_iter().filter(|r| r.author.id == self.id).collect()
        }
    }

    #[derive(SimpleObject, Clone)]
    #[graphql(complex)]
    pub struct Product {
        pub upc: String,
    }

    #[ComplexObject]
    impl Product {
        async fn reviews(&self) -> Vec<Review> {
            all().into_iter().filter(|r| r.product.upc == self.upc).collect()
        }
    }

    fn review(id: &str, body: &str, author: (&str, &str), upc: &str) -> Review {
        Review {
            id: ID(id.into()),
            body: body.into(),
            author: User { id: ID(author.0.into()), username: author.1.into() },
            product: Product { upc: upc.into() },
        }
    }

    pub fn all() -> Vec<Review> {
        vec![
            review("1", "Love it!", ("1", "@ada"), "top-1"),
            review("2", "Too expensive.", ("1", "@ada"), "top-2"),
            review("3", "Could be better.", ("2", "@complete"), "top-3"),
            review("4", "Prefer something else.", ("2", "@complete"), "top-1"),
        ]
    }

    pub struct Query;

    #[Object]
    impl Query {
        #[graphql(entity)]
        async fn find_user_by_id(&self, id: ID) -> User {
            // Only provided by a review: an entity asked for by id is never asked its username.
            User { id, username: String::new() }
        }

        #[graphql(entity)]
        async fn find_product_by_upc(&self, upc: String) -> Product {
            Product { upc }
        }
    }

    /// Bodies of the reviews added, in the order the mutations ran.
    #[derive(Default)]
    pub struct Added(pub Mutex<Vec<String>>);

    pub struct Mutation;

    #[Object]
    impl Mutation {
        async fn add_review(&self, ctx: &Context<'_>, upc: String, body: String) -> Review {
            let added = ctx.data_unchecked::<Arc<Added>>();
            let mut bodies = added.0.lock().unwrap();
            bodies.push(body.clone());
            review(&format!("new-{}", bodies.len()), &body, ("2", "@complete"), &upc)
        }
    }

    pub fn schema() -> Schema<Query, Mutation, EmptySubscription> {
        Schema::build(Query, Mutation, EmptySubscription).enable_federation().data(Arc::new(Added::default())).finish()
    }
}

pub mod inventory {
    use super::*;

    #[derive(SimpleObject, Clone)]
    #[graphql(complex)]
    pub struct Product {
        pub upc: String,
        #[graphql(external)]
        pub price: i32,
        #[graphql(external)]
        pub weight: i32,
        pub in_stock: bool,
    }

    #[ComplexObject]
    impl Product {
        /// Where it is stored; the Fedora's warehouse is not known, an error.
        async fn warehouse(&self) -> async_graphql::Result<Option<String>> {
            match self.upc.as_str() {
                "top-2" => Err("no warehouse holds the Fedora".into()),
                _ => Ok(Some("north".into())),
            }
        }

        /// Free over 20, else half the weight.
        #[graphql(requires = "price weight")]
        async fn shipping_estimate(&self) -> i32 {
            if self.price > 20 {
                0
            } else {
                self.weight / 2
            }
        }
    }

    pub struct Query;

    #[Object]
    impl Query {
        #[graphql(entity)]
        async fn find_product_by_upc(
            &self,
            #[graphql(key)] upc: String,
            price: Option<i32>,
            weight: Option<i32>,
        ) -> Product {
            // Representations carry price and weight only when shippingEstimate is asked for.
            let in_stock = upc != "top-2";
            Product { upc, price: price.unwrap_or_default(), weight: weight.unwrap_or_default(), in_stock }
        }
    }

    pub fn schema() -> Schema<Query, async_graphql::EmptyMutation, EmptySubscription> {
        Schema::build(Query, async_graphql::EmptyMutation, EmptySubscription).enable_federation().finish()
    }
}

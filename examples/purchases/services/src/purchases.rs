//! The purchases service: purchases, the products bought, and the student who bought each
//! (a `Student` reference the classroom service completes). `me` is the student named by the
//! `x-student-id` header, which the hub forwards (`forward_headers`).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use async_graphql::{ComplexObject, Context, EmptySubscription, Object, Result, Schema, SimpleObject, ID};
use async_graphql_axum::{GraphQLRequest, GraphQLResponse};
use axum::extract::State;
use axum::http::HeaderMap;

pub type PurchasesSchema = Schema<Query, Mutation, EmptySubscription>;

/// A product on sale.
#[derive(Clone, SimpleObject)]
pub struct Product {
    pub id: ID,
    pub title: String,
}

/// A student, as the purchases service knows one: by id, with their purchases.
#[derive(Clone, SimpleObject)]
#[graphql(complex)]
pub struct Student {
    pub id: ID,
}

/// One purchase of a product by a student.
#[derive(Clone, SimpleObject)]
#[graphql(complex)]
pub struct Purchase {
    pub id: ID,
    pub amount: f64,
    #[graphql(skip)]
    pub product_id: String,
    #[graphql(skip)]
    pub student_id: String,
}

/// The service's data: products fixed, purchases growing with `createPurchase`.
pub struct Store {
    products: BTreeMap<String, Product>,
    purchases: Mutex<Vec<Purchase>>,
}

impl Store {
    pub fn seeded() -> Store {
        let products = [("p1", "Learning GraphQL"), ("p2", "Kafka in Practice"), ("p3", "Rust for Services")]
            .into_iter()
            .map(|(id, title)| (id.to_owned(), Product { id: ID::from(id), title: title.to_owned() }))
            .collect();
        let purchases = [("pu1", "s1", "p1", 29.0), ("pu2", "s1", "p2", 19.5), ("pu3", "s2", "p3", 35.0)]
            .into_iter()
            .map(|(id, student, product, amount)| Purchase {
                id: ID::from(id),
                amount,
                product_id: product.to_owned(),
                student_id: student.to_owned(),
            })
            .collect();
        Store { products, purchases: Mutex::new(purchases) }
    }

    fn purchase(&self, id: &str) -> Option<Purchase> {
        self.purchases.lock().ok()?.iter().find(|purchase| purchase.id.as_str() == id).cloned()
    }

    fn purchases_of(&self, student: &str) -> Vec<Purchase> {
        let purchases = self.purchases.lock().map(|purchases| purchases.clone()).unwrap_or_default();
        purchases.into_iter().filter(|purchase| purchase.student_id == student).collect()
    }
}

/// The student whose id the request's `x-student-id` header carries.
#[derive(Clone)]
pub struct Viewer(pub Option<String>);

pub struct Query;

#[Object]
impl Query {
    /// The student making the request.
    async fn me(&self, ctx: &Context<'_>) -> Option<Student> {
        let viewer = ctx.data_opt::<Viewer>().and_then(|viewer| viewer.0.clone()).unwrap_or_else(|| "s1".to_owned());
        Some(Student { id: ID::from(viewer) })
    }

    async fn products(&self, ctx: &Context<'_>) -> Result<Vec<Product>> {
        Ok(ctx.data::<Arc<Store>>()?.products.values().cloned().collect())
    }

    #[graphql(entity)]
    async fn find_purchase_by_id(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Purchase>> {
        Ok(ctx.data::<Arc<Store>>()?.purchase(&id))
    }

    #[graphql(entity)]
    async fn find_product_by_id(&self, ctx: &Context<'_>, id: ID) -> Result<Option<Product>> {
        Ok(ctx.data::<Arc<Store>>()?.products.get(id.as_str()).cloned())
    }

    #[graphql(entity)]
    async fn find_student_by_id(&self, id: ID) -> Student {
        Student { id }
    }
}

#[ComplexObject]
impl Student {
    async fn purchases(&self, ctx: &Context<'_>) -> Result<Vec<Purchase>> {
        Ok(ctx.data::<Arc<Store>>()?.purchases_of(&self.id))
    }
}

#[ComplexObject]
impl Purchase {
    async fn product(&self, ctx: &Context<'_>) -> Result<Option<Product>> {
        Ok(ctx.data::<Arc<Store>>()?.products.get(&self.product_id).cloned())
    }

    async fn student(&self) -> Student {
        Student { id: ID::from(self.student_id.clone()) }
    }
}

pub struct Mutation;

#[Object]
impl Mutation {
    /// Records a purchase; its event (`{"id": …, "studentId": …}`) is published by the caller.
    async fn create_purchase(
        &self,
        ctx: &Context<'_>,
        id: ID,
        student_id: ID,
        product_id: ID,
        amount: f64,
    ) -> Result<Purchase> {
        let store = ctx.data::<Arc<Store>>()?;
        if !store.products.contains_key(product_id.as_str()) {
            return Err(format!("no product `{}`", product_id.as_str()).into());
        }
        let purchase = Purchase { id, amount, product_id: product_id.to_string(), student_id: student_id.to_string() };
        store.purchases.lock().map_err(|_| "the store is unavailable")?.push(purchase.clone());
        Ok(purchase)
    }
}

/// The `/graphql` route, with the `x-student-id` header as the viewer.
pub fn router(schema: PurchasesSchema) -> axum::Router {
    async fn graphql(
        State(schema): State<PurchasesSchema>,
        headers: HeaderMap,
        request: GraphQLRequest,
    ) -> GraphQLResponse {
        let viewer = headers.get("x-student-id").and_then(|value| value.to_str().ok()).map(str::to_owned);
        schema.execute(request.into_inner().data(Viewer(viewer))).await.into()
    }
    axum::Router::new().route("/graphql", axum::routing::post(graphql)).with_state(schema)
}

pub fn schema() -> PurchasesSchema {
    Schema::build(Query, Mutation, EmptySubscription).data(Arc::new(Store::seeded())).enable_federation().finish()
}

use super::*;

fn subgraph(name: &str, sdl: &str) -> SubgraphSdl {
    SubgraphSdl { name: name.to_owned(), url: format!("http://127.0.0.1:4001/{name}"), sdl: sdl.to_owned() }
}

const USERS: &str = r#"
    extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
    type Query { me: User }
    type User @key(fields: "id") { id: ID! name: String! }
"#;

const REVIEWS: &str = r#"
    extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
    type User @key(fields: "id") { id: ID! reviews: [Review!]! }
    type Review { body: String! }
    type Subscription { reviewAdded: Review! }
"#;

#[test]
fn every_subgraph_joins_the_query_type_and_its_own_roots() {
    let composed = compose(&[subgraph("users", USERS), subgraph("reviews", REVIEWS)]).expect("composes");
    let sdl = &composed.supergraph;
    assert!(sdl.contains("type Query\n  @join__type(graph: USERS)\n  @join__type(graph: REVIEWS)\n{"), "{sdl}");
    assert!(sdl.contains("type Subscription\n  @join__type(graph: REVIEWS)\n{"), "{sdl}");
    assert!(sdl.contains("directive @join__type(graph: join__Graph!, key: join__FieldSet, extension: Boolean! = false, resolvable: Boolean! = true, isInterfaceObject: Boolean! = false) repeatable on"), "{sdl}");
    assert!(sdl.contains("enum link__Purpose"), "{sdl}");
}

#[test]
fn subgraph_names_with_underscores_are_kept() {
    let composed = compose(&[subgraph("user_accounts", USERS), subgraph("reviews", REVIEWS)]).expect("composes");
    let sdl = &composed.supergraph;
    assert!(
        sdl.contains(
            r#"USER_ACCOUNTS @join__graph(name: "user_accounts", url: "http://127.0.0.1:4001/user_accounts")"#
        ),
        "{sdl}"
    );
    assert!(sdl.contains("@join__type(graph: USER_ACCOUNTS, key: \"id\")"), "{sdl}");
}

#[test]
fn names_that_collide_or_do_not_fit_are_refused() {
    let refused = compose(&[subgraph("user_accounts", USERS), subgraph("user-accounts", REVIEWS)]).unwrap_err();
    assert_eq!(refused, ComposeError::SameName("user_accounts".into(), "user-accounts".into(), "USER_ACCOUNTS".into()));
    assert_eq!(compose(&[subgraph("9lives", USERS)]).unwrap_err(), ComposeError::InvalidName("9lives".into()));
    assert_eq!(compose(&[]).unwrap_err(), ComposeError::NoSubgraphs);
}

#[test]
fn conflicts_name_the_subgraphs_by_their_configured_names() {
    let other = r#"
        extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key"])
        type User @key(fields: "id") { id: ID! name: Int! }
    "#;
    let error = compose(&[subgraph("users", USERS), subgraph("old_users", other)]).unwrap_err();
    let text = error.to_string();
    assert!(text.starts_with("the subgraphs do not compose:\n  - "), "{text}");
    assert!(text.contains("User.name"), "{text}");
    assert!(text.contains("old_users"), "{text}");
    assert!(!text.contains("old-users"), "{text}");
}

#[test]
fn a_subgraph_that_does_not_parse_is_named_with_the_place() {
    let error =
        compose(&[subgraph("users", USERS), subgraph("broken", "type Query {\n  a: Int\n  b:\n}")]).unwrap_err();
    let ComposeError::Parse { subgraph, line, .. } = &error else { panic!("{error:?}") };
    assert_eq!((subgraph.as_str(), *line), ("broken", 4));
    assert!(error.to_string().starts_with("subgraph `broken`: its SDL does not parse at line 4"), "{error}");
}

#[test]
fn external_key_fields_and_extensions_are_joined_as_rover_joins_them() {
    let nickname = r#"
        extend schema @link(url: "https://specs.apollo.dev/federation/v2.0", import: ["@key", "@external", "@extends"])
        type User @key(fields: "id") { id: ID! @external nickname: String! }
        type Product @extends @key(fields: "upc") { upc: ID! @external reviews: Int }
    "#;
    let products = r#"
        extend schema @link(url: "https://specs.apollo.dev/federation/v2.0", import: ["@key"])
        type Query { products: [Product] }
        type Product @key(fields: "upc") { upc: ID! price: Int }
    "#;
    let composed = compose(&[subgraph("users", USERS), subgraph("nickname", nickname), subgraph("products", products)])
        .expect("composes");
    let sdl = &composed.supergraph;
    assert!(sdl.contains("id: ID! @join__field(graph: USERS) @join__field(graph: NICKNAME, external: true)"), "{sdl}");
    assert!(sdl.contains("@join__type(graph: NICKNAME, key: \"upc\", extension: true)"), "{sdl}");
    // A key field of an extension is resolvable there (Federation 1's way of naming a key).
    assert!(sdl.contains("  upc: ID!\n"), "{sdl}");
}

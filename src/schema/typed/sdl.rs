//! Reading a typed schema's SDL: its types (as the neutral type model), and what its directives
//! bind, checked with the line and column of every problem: `@subscribe` and `@filter` on
//! Subscription fields, `@publish` on Mutation fields, `@event` on the fields of result types.

use std::collections::{BTreeSet, HashMap};

use async_graphql::parser::types::{
    ConstDirective, FieldDefinition, ServiceDocument, TypeDefinition, TypeKind, TypeSystemDefinition,
};
use async_graphql::{Pos, Positioned, Value};
use subhub_upstream_ws::model::{is_builtin_scalar, TypeModel};

use super::filter::{FilterSpec, Op, Operand};
use crate::execute::Meta;
use crate::template::Template;

/// A problem in the SDL, at its line and column.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Problem {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// A Subscription field and the sources it reads.
#[derive(Clone, Debug)]
pub struct SubscribeField {
    pub name: String,
    /// `None`: the default broker.
    pub broker: Option<String>,
    pub topics: Vec<Template>,
    pub filters: Vec<FilterSpec>,
}

/// A Mutation field and where it publishes.
#[derive(Clone, Debug)]
pub struct PublishField {
    pub name: String,
    pub broker: Option<String>,
    pub topic: Template,
    pub key: Option<Template>,
}

/// What a typed schema declares.
#[derive(Clone, Debug, Default)]
pub struct Declared {
    pub model: TypeModel,
    pub subscriptions: Vec<SubscribeField>,
    pub mutations: Vec<PublishField>,
    /// Fields read from the event's metadata (`@event`), by type and field name.
    pub meta: HashMap<(String, String), Meta>,
}

/// What the SDL is read against.
pub struct Context<'a> {
    /// Configured broker names.
    pub brokers: Vec<&'a str>,
    /// Types the hub provides itself, which the SDL may use (and declare again, ignored).
    pub provided: &'a [&'a str],
    /// Names the SDL may not take (the built-in schema's).
    pub taken: &'a [&'a str],
}

/// The hub's own directives.
pub const HUB_DIRECTIVES: [&str; 4] = ["subscribe", "publish", "filter", "event"];
const STANDARD_DIRECTIVES: [&str; 2] = ["deprecated", "specifiedBy"];
/// Federation v2 directives a typed schema may use: the hub serves its fields as a subgraph.
pub const FEDERATION_DIRECTIVES: [&str; 6] = ["key", "shareable", "external", "inaccessible", "tag", "override"];
/// Federation directives that ask a subgraph to resolve entities for others, which the hub does
/// not do: it answers no `_entities` requests.
const ENTITY_RESOLVING: [&str; 6] =
    ["requires", "provides", "interfaceObject", "composeDirective", "context", "extends"];

pub fn read(text: &str, context: &Context<'_>) -> Result<Declared, Vec<Problem>> {
    let document = match async_graphql::parser::parse_schema(text) {
        Ok(document) => document,
        Err(error) => {
            let pos = error.positions().next().unwrap_or(Pos { line: 1, column: 1 });
            let message = error.to_string().lines().last().unwrap_or("the SDL does not parse").trim().to_owned();
            return Err(vec![problem(pos, format!("the SDL does not parse: {message}"))]);
        }
    };
    let model = TypeModel::from_sdl(text).map_err(|message| vec![problem(Pos { line: 1, column: 1 }, message)])?;
    let mut reader = Reader { context, model: &model, problems: Vec::new(), declared: Declared::default() };
    reader.document(&document);
    let Reader { problems, mut declared, .. } = reader;
    if !problems.is_empty() {
        return Err(problems);
    }
    declared.model = model;
    Ok(declared)
}

fn problem(pos: Pos, message: impl Into<String>) -> Problem {
    Problem { line: pos.line, column: pos.column, message: message.into() }
}

struct Reader<'a> {
    context: &'a Context<'a>,
    model: &'a TypeModel,
    problems: Vec<Problem>,
    declared: Declared,
}

impl<'a> Reader<'a> {
    fn report(&mut self, pos: Pos, message: impl Into<String>) {
        self.problems.push(problem(pos, message));
    }

    fn document(&mut self, document: &ServiceDocument) {
        for definition in &document.definitions {
            match definition {
                TypeSystemDefinition::Schema(schema) => {
                    let roots = &schema.node;
                    let custom =
                        [(&roots.query, "Query"), (&roots.mutation, "Mutation"), (&roots.subscription, "Subscription")]
                            .into_iter()
                            .find_map(|(root, name)| {
                                root.as_ref().filter(|root| root.node != name).map(|root| (root.pos, name))
                            });
                    if let Some((pos, name)) = custom {
                        self.report(pos, format!("the root types keep their names: call this type `{name}`"));
                    }
                    for directive in &roots.directives {
                        self.schema_directive(directive);
                    }
                }
                TypeSystemDefinition::Type(ty) => self.type_definition(ty),
                TypeSystemDefinition::Directive(directive) => {
                    let name = directive.node.name.node.as_str();
                    let known = HUB_DIRECTIVES.contains(&name)
                        || FEDERATION_DIRECTIVES.contains(&name)
                        || ENTITY_RESOLVING.contains(&name)
                        || name == "link";
                    if !known {
                        self.report(
                            directive.pos,
                            format!("a definition of unknown directive @{name}: the hub defines @subscribe, @publish, @filter and @event, and Federation the others it takes"),
                        );
                    }
                }
            }
        }
    }

    fn type_definition(&mut self, ty: &Positioned<TypeDefinition>) {
        let name = ty.node.name.node.as_str();
        if ty.node.extend {
            return self.report(ty.pos, format!("`extend type {name}`: write its fields in the type itself"));
        }
        if self.context.taken.contains(&name) {
            return self.report(
                ty.node.name.pos,
                format!("`{name}` is a type of the built-in schema; name it otherwise, or set generic_api = false"),
            );
        }
        if self.context.provided.contains(&name) {
            return;
        }
        self.directives_known(&ty.node.directives);
        self.type_federation(ty);
        let fields = match &ty.node.kind {
            TypeKind::Object(object) => &object.fields,
            TypeKind::Interface(interface) => &interface.fields,
            _ => return,
        };
        for field in fields {
            self.field_types(field);
            self.directives_known(&field.node.directives);
            self.field_federation(name, field);
            match name {
                "Subscription" => self.subscription_field(field),
                "Mutation" => self.mutation_field(field),
                "Query" => self.report(
                    field.pos,
                    "a typed schema serves no Query fields: subscribe with @subscribe, publish with @publish",
                ),
                _ => self.result_field(name, field),
            }
        }
    }

    fn directives_known(&mut self, directives: &[Positioned<ConstDirective>]) {
        for directive in directives {
            let name = directive.node.name.node.as_str();
            if ENTITY_RESOLVING.contains(&name) {
                self.report(
                    directive.pos,
                    format!("@{name}: the hub resolves no entities for other subgraphs (it answers no `_entities` requests)"),
                );
            } else if !(HUB_DIRECTIVES.contains(&name)
                || STANDARD_DIRECTIVES.contains(&name)
                || FEDERATION_DIRECTIVES.contains(&name))
            {
                self.report(
                    directive.pos,
                    format!("unknown directive @{name} (the hub knows @subscribe, @publish, @filter and @event, and Federation's {})", FEDERATION_DIRECTIVES.map(|name| format!("@{name}")).join(", ")),
                );
            }
        }
    }

    /// `extend schema @link(…)`: the only directive a schema takes; Federation's must be v2.
    fn schema_directive(&mut self, directive: &Positioned<ConstDirective>) {
        if directive.node.name.node != "link" {
            let name = &directive.node.name.node;
            return self.report(directive.pos, format!("@{name} on the schema: only @link(url: …) goes there"));
        }
        match argument(directive, "url").map(|url| &url.node) {
            Some(Value::String(url)) if url.contains("specs.apollo.dev/federation/") => {
                if !url.contains("/federation/v2.") {
                    self.report(directive.pos, format!("@link(url: \"{url}\"): the hub is a Federation v2 subgraph; link https://specs.apollo.dev/federation/v2.3"));
                }
            }
            Some(Value::String(_)) => {}
            _ => self.report(directive.pos, "@link needs `url`, a string"),
        }
    }

    /// Federation directives on a type: `@key(fields: …)` names fields the type has.
    fn type_federation(&mut self, ty: &Positioned<TypeDefinition>) {
        let name = ty.node.name.node.as_str();
        let fields: &[Positioned<FieldDefinition>] = match &ty.node.kind {
            TypeKind::Object(object) => &object.fields,
            TypeKind::Interface(interface) => &interface.fields,
            _ => &[],
        };
        for directive in &ty.node.directives {
            match directive.node.name.node.as_str() {
                "key" if ["Query", "Mutation", "Subscription"].contains(&name) || fields.is_empty() => {
                    self.report(
                        directive.pos,
                        format!("@key on `{name}`: keys belong on entity types, objects with fields"),
                    );
                }
                "key" => self.key(name, fields, directive),
                "external" | "override" => {
                    let directive_name = &directive.node.name.node;
                    self.report(directive.pos, format!("@{directive_name} belongs on fields, not on type `{name}`"));
                }
                _ => {}
            }
        }
    }

    fn key(&mut self, type_name: &str, fields: &[Positioned<FieldDefinition>], directive: &Positioned<ConstDirective>) {
        match argument(directive, "fields").map(|fields| &fields.node) {
            Some(Value::String(selection)) => {
                let names = subhub_federation::compose::top_level_fields(selection);
                if names.is_empty() {
                    self.report(directive.pos, "@key(fields: …) names at least one field");
                }
                for field in names {
                    if !fields.iter().any(|f| f.node.name.node == field) {
                        self.report(
                            directive.pos,
                            format!("@key(fields: \"{selection}\"): `{type_name}` has no field `{field}`"),
                        );
                    }
                }
            }
            _ => self.report(directive.pos, "@key needs `fields`, a string: @key(fields: \"id\")"),
        }
        if let Some(resolvable) = argument(directive, "resolvable") {
            if resolvable.node != Value::Boolean(false) {
                self.report(
                    resolvable.pos,
                    "the hub answers no `_entities` requests: its keys are `resolvable: false` (leave `resolvable` out)",
                );
            }
        }
    }

    /// Federation directives on a field: `@external` and `@override` only where the hub could
    /// own the field.
    fn field_federation(&mut self, type_name: &str, field: &Positioned<FieldDefinition>) {
        for directive in &field.node.directives {
            match directive.node.name.node.as_str() {
                "external" if ["Mutation", "Subscription"].contains(&type_name) => {
                    self.report(directive.pos, format!("@external on a {type_name} field: the hub serves it"));
                }
                "override" => match argument(directive, "from").map(|from| &from.node) {
                    Some(Value::String(_)) => {}
                    _ => self.report(directive.pos, "@override needs `from`, the subgraph the field moves from"),
                },
                "key" | "extends" | "interfaceObject" => {
                    let name = &directive.node.name.node;
                    self.report(directive.pos, format!("@{name} belongs on types, not on fields"));
                }
                _ => {}
            }
        }
    }

    /// Every type a field and its arguments name must exist.
    fn field_types(&mut self, field: &Positioned<FieldDefinition>) {
        let field = &field.node;
        let types = std::iter::once((&field.ty.node, field.ty.pos))
            .chain(field.arguments.iter().map(|arg| (&arg.node.ty.node, arg.node.ty.pos)));
        for (ty, pos) in types {
            let base = base_name(ty);
            if !is_builtin_scalar(base)
                && !self.model.types.contains_key(base)
                && !self.context.provided.contains(&base)
            {
                self.report(pos, format!("unknown type `{base}`"));
            }
        }
    }

    fn subscription_field(&mut self, field: &Positioned<FieldDefinition>) {
        let name = field.node.name.node.to_string();
        let (subscribe, others) = split(&field.node.directives, "subscribe");
        let Some(subscribe) = subscribe else {
            return self
                .report(field.pos, format!("Subscription field `{name}` needs @subscribe(broker: …, topic: …)"));
        };
        for directive in others {
            if matches!(directive.node.name.node.as_str(), "publish" | "event") {
                self.misplaced(directive, "Subscription");
            }
        }
        let broker = self.broker(subscribe);
        let topics = match (argument(subscribe, "topic"), argument(subscribe, "topics")) {
            (Some(topic), None) => self.template(field, topic).into_iter().collect(),
            (None, Some(topics)) => match &topics.node {
                Value::List(items) if !items.is_empty() => {
                    let positioned =
                        items.iter().map(|item| Positioned::new(item.clone(), topics.pos)).collect::<Vec<_>>();
                    positioned.iter().filter_map(|item| self.template(field, item)).collect()
                }
                _ => {
                    self.report(topics.pos, "`topics` is a list of topic strings");
                    Vec::new()
                }
            },
            _ => {
                self.report(subscribe.pos, "@subscribe takes `topic` or `topics`, one of them");
                Vec::new()
            }
        };
        let filters = field
            .node
            .directives
            .iter()
            .filter(|directive| directive.node.name.node == "filter")
            .filter_map(|directive| self.filter(field, directive))
            .collect();
        self.declared.subscriptions.push(SubscribeField { name, broker, topics, filters });
    }

    fn mutation_field(&mut self, field: &Positioned<FieldDefinition>) {
        let name = field.node.name.node.to_string();
        let (publish, others) = split(&field.node.directives, "publish");
        let Some(publish) = publish else {
            return self.report(field.pos, format!("Mutation field `{name}` needs @publish(broker: …, topic: …)"));
        };
        for directive in others {
            if matches!(directive.node.name.node.as_str(), "subscribe" | "filter" | "event") {
                self.misplaced(directive, "Mutation");
            }
        }
        if base_name(&field.node.ty.node) != "PublishResult"
            || matches!(field.node.ty.node.base, async_graphql::parser::types::BaseType::List(_))
        {
            self.report(field.node.ty.pos, format!("Mutation field `{name}` publishes: it returns PublishResult!"));
        }
        let broker = self.broker(publish);
        let topic = match argument(publish, "topic") {
            Some(topic) => self.template(field, topic),
            None => {
                self.report(publish.pos, "@publish needs `topic`");
                None
            }
        };
        let key = argument(publish, "key").and_then(|key| self.template(field, key));
        if let Some(topic) = topic {
            self.declared.mutations.push(PublishField { name, broker, topic, key });
        }
    }

    fn result_field(&mut self, type_name: &str, field: &Positioned<FieldDefinition>) {
        for directive in &field.node.directives {
            match directive.node.name.node.as_str() {
                "subscribe" => self.misplaced(directive, type_name),
                "publish" => self.misplaced(directive, type_name),
                "filter" => self.misplaced(directive, type_name),
                "event" => {
                    let meta = argument(directive, "meta").and_then(|meta| match &meta.node {
                        Value::String(text) => Meta::named(text),
                        _ => None,
                    });
                    match meta {
                        Some(meta) => {
                            self.declared.meta.insert((type_name.to_owned(), field.node.name.node.to_string()), meta);
                        }
                        None => self.report(
                            directive.pos,
                            "@event(meta: …) reads \"topic\", \"key\", \"id\", \"timestamp\", \"broker\", \"headers\" or \"headers.NAME\"",
                        ),
                    }
                }
                _ => {}
            }
        }
    }

    fn misplaced(&mut self, directive: &Positioned<ConstDirective>, type_name: &str) {
        let name = directive.node.name.node.as_str();
        let belongs = match name {
            "subscribe" | "filter" => "Subscription fields",
            "publish" => "Mutation fields",
            _ => "the fields of result types (not Subscription or Mutation fields)",
        };
        self.report(directive.pos, format!("@{name} on a field of `{type_name}`: it belongs on {belongs}"));
    }

    fn broker(&mut self, directive: &Positioned<ConstDirective>) -> Option<String> {
        let broker = argument(directive, "broker")?;
        let Value::String(name) = &broker.node else {
            self.report(broker.pos, "`broker` names a configured broker, as a string");
            return None;
        };
        if !self.context.brokers.contains(&name.as_str()) {
            let configured = self.context.brokers.join(", ");
            self.report(broker.pos, format!("unknown broker `{name}` (configured: {configured})"));
        }
        Some(name.clone())
    }

    /// A topic or key template, its argument names checked against the field's.
    fn template(&mut self, field: &Positioned<FieldDefinition>, value: &Positioned<Value>) -> Option<Template> {
        let Value::String(text) = &value.node else {
            self.report(value.pos, "a topic is a string");
            return None;
        };
        match Template::parse(text) {
            Ok(template) => {
                self.args_exist(field, &template, value.pos);
                Some(template)
            }
            Err(message) => {
                self.report(value.pos, message);
                None
            }
        }
    }

    fn args_exist(&mut self, field: &Positioned<FieldDefinition>, template: &Template, pos: Pos) {
        let declared: BTreeSet<&str> = field.node.arguments.iter().map(|arg| arg.node.name.node.as_str()).collect();
        for arg in template.args() {
            if !declared.contains(arg) {
                let name = &field.node.name.node;
                self.report(pos, format!("the template names argument `{arg}`, which field `{name}` does not have"));
            }
        }
    }

    fn filter(
        &mut self,
        field: &Positioned<FieldDefinition>,
        directive: &Positioned<ConstDirective>,
    ) -> Option<FilterSpec> {
        let path = match argument(directive, "field").map(|field| &field.node) {
            Some(Value::String(path)) => path.split('.').map(str::to_owned).collect::<Vec<_>>(),
            _ => {
                self.report(directive.pos, "@filter needs `field`: the payload field it tests");
                return None;
            }
        };
        self.filter_path(field, &path, directive.pos);
        let ops: Vec<_> = directive
            .node
            .arguments
            .iter()
            .filter(|(name, _)| name.node != "field")
            .map(|(name, value)| (Op::named(&name.node), name, value))
            .collect();
        let [(Some(op), _, value)] = ops.as_slice() else {
            let names = Op::NAMES.join(", ");
            self.report(directive.pos, format!("@filter takes `field` and one comparison of: {names}"));
            return None;
        };
        let operand = self.operand(field, value)?;
        Some(FilterSpec { path, op: *op, operand })
    }

    fn operand(&mut self, field: &Positioned<FieldDefinition>, value: &Positioned<Value>) -> Option<Operand> {
        match &value.node {
            Value::String(text) if text.contains("{{") || text.contains("}}") => match Template::parse(text) {
                Ok(template) => {
                    self.args_exist(field, &template, value.pos);
                    Some(Operand::Template(template))
                }
                Err(message) => {
                    self.report(value.pos, message);
                    None
                }
            },
            Value::List(items) => items
                .iter()
                .map(|item| self.operand(field, &Positioned::new(item.clone(), value.pos)))
                .collect::<Option<Vec<_>>>()
                .map(Operand::List),
            other => match other.clone().into_json() {
                Ok(json) => Some(Operand::Value(json)),
                Err(_) => {
                    self.report(value.pos, "a filter compares with a plain value");
                    None
                }
            },
        }
    }

    /// A filter's path must follow fields of the subscription's result type.
    fn filter_path(&mut self, field: &Positioned<FieldDefinition>, path: &[String], pos: Pos) {
        let mut type_name = base_name(&field.node.ty.node).to_owned();
        for step in path {
            let Some(next) = self
                .model
                .types
                .get(&type_name)
                .and_then(|ty| ty.fields.iter().find(|f| &f.name == step))
                .map(|f| f.ty.clone())
            else {
                return self
                    .report(pos, format!("@filter on field `{}`, which `{type_name}` does not have", path.join(".")));
            };
            type_name = next.base().to_owned();
        }
    }
}

/// The directive called `name`, and the others.
fn split<'d>(
    directives: &'d [Positioned<ConstDirective>],
    name: &str,
) -> (Option<&'d Positioned<ConstDirective>>, Vec<&'d Positioned<ConstDirective>>) {
    let found = directives.iter().find(|directive| directive.node.name.node == name);
    let others = directives.iter().filter(|directive| directive.node.name.node != name).collect();
    (found, others)
}

fn argument<'d>(directive: &'d Positioned<ConstDirective>, name: &str) -> Option<&'d Positioned<Value>> {
    directive.node.arguments.iter().find(|(key, _)| key.node == name).map(|(_, value)| value)
}

fn base_name(ty: &async_graphql::parser::types::Type) -> &str {
    match &ty.base {
        async_graphql::parser::types::BaseType::Named(name) => name.as_str(),
        async_graphql::parser::types::BaseType::List(inner) => base_name(inner),
    }
}

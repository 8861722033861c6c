//! SDL printed from a parsed document, laid out as rover and the Hive CLI print supergraphs: a
//! type's directives one per line under its name, fields with theirs on the same line.

use std::fmt::Write as _;

use async_graphql_parser::types::{
    ConstDirective, DirectiveDefinition, DirectiveLocation, EnumValueDefinition, FieldDefinition, InputValueDefinition,
    SchemaDefinition, ServiceDocument, TypeDefinition, TypeKind, TypeSystemDefinition,
};
use async_graphql_parser::Positioned;
use async_graphql_value::ConstValue;

const INDENT: &str = "  ";

/// Parses SDL as `async_graphql_parser::parse_schema` does, with `repeatable` read from the
/// text: the parser marks every directive definition repeatable.
pub fn parse(sdl: &str) -> Result<ServiceDocument, async_graphql_parser::Error> {
    let mut document = async_graphql_parser::parse_schema(sdl)?;
    let lines: Vec<usize> = std::iter::once(0).chain(sdl.match_indices('\n').map(|(at, _)| at + 1)).collect();
    for definition in &mut document.definitions {
        let TypeSystemDefinition::Directive(directive) = definition else { continue };
        let start = lines.get(directive.pos.line.saturating_sub(1)).copied().unwrap_or(0);
        let offset = sdl[start..]
            .char_indices()
            .nth(directive.pos.column.saturating_sub(1))
            .map_or(sdl.len(), |(at, _)| start + at);
        directive.node.is_repeatable = declared_repeatable(&sdl[offset..], directive.node.name.node.as_str());
    }
    Ok(document)
}

/// Whether the definition at the start of `text` (`"…" directive @name(…) repeatable on …`)
/// says `repeatable`.
fn declared_repeatable(text: &str, name: &str) -> bool {
    let Some(at) = text.find(&format!("@{name}")) else { return false };
    let mut rest = text[at + name.len() + 1..].trim_start();
    if rest.starts_with('(') {
        let mut depth = 0usize;
        let mut chars = rest.char_indices();
        let mut end = rest.len();
        while let Some((at, c)) = chars.next() {
            match c {
                '"' => {
                    // Skip a string or block string; arguments' descriptions may hold parentheses.
                    let block = rest[at..].starts_with("\"\"\"");
                    let close = if block { "\"\"\"" } else { "\"" };
                    let from = at + close.len();
                    let found = rest[from..].find(close).map_or(rest.len(), |i| from + i + close.len());
                    while chars.clone().next().is_some_and(|(next, _)| next < found) {
                        chars.next();
                    }
                }
                '(' => depth += 1,
                ')' => {
                    depth -= 1;
                    if depth == 0 {
                        end = at + 1;
                        break;
                    }
                }
                _ => {}
            }
        }
        rest = rest[end..].trim_start();
    }
    rest.starts_with("repeatable") && !rest["repeatable".len()..].starts_with(|c: char| c.is_alphanumeric() || c == '_')
}

/// The document as SDL, definitions in their order, separated by blank lines.
pub fn print(document: &ServiceDocument) -> String {
    let mut out = String::new();
    for definition in &document.definitions {
        if !out.is_empty() {
            out.push('\n');
        }
        match definition {
            TypeSystemDefinition::Schema(schema) => schema_definition(&mut out, &schema.node),
            TypeSystemDefinition::Directive(directive) => directive_definition(&mut out, &directive.node),
            TypeSystemDefinition::Type(ty) => type_definition(&mut out, &ty.node),
        }
    }
    out
}

fn schema_definition(out: &mut String, schema: &SchemaDefinition) {
    out.push_str(if schema.extend { "extend schema" } else { "schema" });
    block_directives(out, &schema.directives);
    let roots = [("query", &schema.query), ("mutation", &schema.mutation), ("subscription", &schema.subscription)];
    if roots.iter().any(|(_, name)| name.is_some()) {
        out.push_str(if schema.directives.is_empty() { " {\n" } else { "\n{\n" });
        for (root, name) in roots {
            if let Some(name) = name {
                let _ = writeln!(out, "{INDENT}{root}: {}", name.node);
            }
        }
        out.push_str("}\n");
    } else {
        out.push('\n');
    }
}

fn directive_definition(out: &mut String, directive: &DirectiveDefinition) {
    description(out, directive.description.as_ref(), "");
    let _ = write!(out, "directive @{}", directive.name.node);
    arguments(out, &directive.arguments);
    if directive.is_repeatable {
        out.push_str(" repeatable");
    }
    let locations: Vec<&str> = directive.locations.iter().map(|location| location_name(&location.node)).collect();
    let _ = writeln!(out, " on {}", locations.join(" | "));
}

fn type_definition(out: &mut String, ty: &TypeDefinition) {
    description(out, ty.description.as_ref(), "");
    if ty.extend {
        out.push_str("extend ");
    }
    let name = &ty.name.node;
    let (keyword, implements) = match &ty.kind {
        TypeKind::Scalar => ("scalar", &[][..]),
        TypeKind::Object(object) => ("type", &object.implements[..]),
        TypeKind::Interface(interface) => ("interface", &interface.implements[..]),
        TypeKind::Union(_) => ("union", &[][..]),
        TypeKind::Enum(_) => ("enum", &[][..]),
        TypeKind::InputObject(_) => ("input", &[][..]),
    };
    let _ = write!(out, "{keyword} {name}");
    if !implements.is_empty() {
        let names: Vec<&str> = implements.iter().map(|name| name.node.as_str()).collect();
        let _ = write!(out, " implements {}", names.join(" & "));
    }
    block_directives(out, &ty.directives);
    let open = if ty.directives.is_empty() { " {\n" } else { "\n{\n" };
    match &ty.kind {
        TypeKind::Scalar => out.push('\n'),
        TypeKind::Object(object) => fields(out, open, &object.fields),
        TypeKind::Interface(interface) => fields(out, open, &interface.fields),
        TypeKind::Union(union) => {
            let members: Vec<&str> = union.members.iter().map(|member| member.node.as_str()).collect();
            if ty.directives.is_empty() {
                let _ = writeln!(out, " = {}", members.join(" | "));
            } else {
                let _ = writeln!(out, "\n{INDENT}= {}", members.join(" | "));
            }
        }
        TypeKind::Enum(values) => {
            out.push_str(open);
            for (index, value) in values.values.iter().enumerate() {
                if index > 0 && value.node.description.is_some() {
                    out.push('\n');
                }
                enum_value(out, &value.node);
            }
            out.push_str("}\n");
        }
        TypeKind::InputObject(input) => {
            out.push_str(open);
            for field in &input.fields {
                description(out, field.node.description.as_ref(), INDENT);
                out.push_str(INDENT);
                input_value(out, &field.node);
                out.push('\n');
            }
            out.push_str("}\n");
        }
    }
}

fn fields(out: &mut String, open: &str, fields: &[Positioned<FieldDefinition>]) {
    out.push_str(open);
    for field in fields {
        field_definition(out, &field.node);
    }
    out.push_str("}\n");
}

fn field_definition(out: &mut String, field: &FieldDefinition) {
    description(out, field.description.as_ref(), INDENT);
    let _ = write!(out, "{INDENT}{}", field.name.node);
    arguments(out, &field.arguments);
    let _ = write!(out, ": {}", field.ty.node);
    inline_directives(out, &field.directives);
    out.push('\n');
}

fn enum_value(out: &mut String, value: &EnumValueDefinition) {
    description(out, value.description.as_ref(), INDENT);
    let _ = write!(out, "{INDENT}{}", value.value.node);
    inline_directives(out, &value.directives);
    out.push('\n');
}

fn arguments(out: &mut String, arguments: &[Positioned<InputValueDefinition>]) {
    if arguments.is_empty() {
        return;
    }
    out.push('(');
    for (index, argument) in arguments.iter().enumerate() {
        if index > 0 {
            out.push_str(", ");
        }
        if let Some(text) = &argument.node.description {
            string(out, &text.node);
            out.push(' ');
        }
        input_value(out, &argument.node);
    }
    out.push(')');
}

fn input_value(out: &mut String, value: &InputValueDefinition) {
    let _ = write!(out, "{}: {}", value.name.node, value.ty.node);
    if let Some(default) = &value.default_value {
        out.push_str(" = ");
        const_value(out, &default.node);
    }
    inline_directives(out, &value.directives);
}

/// A type's or the schema's directives, one a line.
fn block_directives(out: &mut String, directives: &[Positioned<ConstDirective>]) {
    for directive in directives {
        let _ = write!(out, "\n{INDENT}");
        self::directive(out, &directive.node);
    }
}

fn inline_directives(out: &mut String, directives: &[Positioned<ConstDirective>]) {
    for directive in directives {
        out.push(' ');
        self::directive(out, &directive.node);
    }
}

fn directive(out: &mut String, directive: &ConstDirective) {
    let _ = write!(out, "@{}", directive.name.node);
    if directive.arguments.is_empty() {
        return;
    }
    out.push('(');
    for (index, (name, value)) in directive.arguments.iter().enumerate() {
        if index > 0 {
            out.push_str(", ");
        }
        let _ = write!(out, "{}: ", name.node);
        const_value(out, &value.node);
    }
    out.push(')');
}

fn const_value(out: &mut String, value: &ConstValue) {
    match value {
        ConstValue::String(text) => string(out, text),
        ConstValue::List(items) => {
            out.push('[');
            for (index, item) in items.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                const_value(out, item);
            }
            out.push(']');
        }
        ConstValue::Object(fields) => {
            out.push('{');
            for (index, (name, item)) in fields.iter().enumerate() {
                if index > 0 {
                    out.push_str(", ");
                }
                let _ = write!(out, "{name}: ");
                const_value(out, item);
            }
            out.push('}');
        }
        other => {
            let _ = write!(out, "{other}");
        }
    }
}

/// A string literal, escaped as the GraphQL spec says.
fn string(out: &mut String, text: &str) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

/// A description: a block string where it can be one, else a plain string.
fn description(out: &mut String, text: Option<&Positioned<String>>, indent: &str) {
    let Some(text) = text else { return };
    let text = &text.node;
    if text.contains("\"\"\"") || text.ends_with('"') || text.chars().any(|c| c.is_control() && c != '\n') {
        out.push_str(indent);
        string(out, text);
        out.push('\n');
        return;
    }
    let _ = writeln!(out, "{indent}\"\"\"");
    for line in text.lines() {
        if line.is_empty() {
            out.push('\n');
        } else {
            let _ = writeln!(out, "{indent}{line}");
        }
    }
    let _ = writeln!(out, "{indent}\"\"\"");
}

fn location_name(location: &DirectiveLocation) -> &'static str {
    match location {
        DirectiveLocation::Query => "QUERY",
        DirectiveLocation::Mutation => "MUTATION",
        DirectiveLocation::Subscription => "SUBSCRIPTION",
        DirectiveLocation::Field => "FIELD",
        DirectiveLocation::FragmentDefinition => "FRAGMENT_DEFINITION",
        DirectiveLocation::FragmentSpread => "FRAGMENT_SPREAD",
        DirectiveLocation::InlineFragment => "INLINE_FRAGMENT",
        DirectiveLocation::VariableDefinition => "VARIABLE_DEFINITION",
        DirectiveLocation::Schema => "SCHEMA",
        DirectiveLocation::Scalar => "SCALAR",
        DirectiveLocation::Object => "OBJECT",
        DirectiveLocation::FieldDefinition => "FIELD_DEFINITION",
        DirectiveLocation::ArgumentDefinition => "ARGUMENT_DEFINITION",
        DirectiveLocation::Interface => "INTERFACE",
        DirectiveLocation::Union => "UNION",
        DirectiveLocation::Enum => "ENUM",
        DirectiveLocation::EnumValue => "ENUM_VALUE",
        DirectiveLocation::InputObject => "INPUT_OBJECT",
        DirectiveLocation::InputFieldDefinition => "INPUT_FIELD_DEFINITION",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Printing what was parsed gives the same document again.
    #[test]
    fn prints_what_parses_back_the_same() {
        let sdl = r#"
extend schema @link(url: "https://specs.apollo.dev/federation/v2.3", import: ["@key", {name: "@shareable", as: "@share"}])
"""
A purchase.
Two lines, "quoted".
"""
type Purchase implements Node & Dated @key(fields: "id") @key(fields: "ref { a b }", resolvable: false) {
  "the id"
  id: ID!
  items(first: Int = 10, "after this" after: String): [Item!]! @deprecated(reason: "use \"lines\"\n")
}
interface Node { id: ID! }
union Thing @tag(name: "x") = Purchase | Item
union Plain = Purchase
enum Currency { EUR "pounds" GBP @deprecated }
input Filter { min: Float = 1.5, tags: [String!] = ["a"], nested: Filter = {min: 2} }
scalar JSON @specifiedBy(url: "https://example.com")
directive @subscribe(broker: String, topic: String, topics: [String!]) repeatable on FIELD_DEFINITION | OBJECT
directive @once("(not repeatable)" a: Int) on FIELD_DEFINITION
schema { query: Query subscription: Subscription }
"#;
        let parsed = parse(sdl).expect("parses");
        let printed = print(&parsed);
        let reparsed = parse(&printed).expect("the printed SDL parses");
        assert_eq!(print(&reparsed), printed);
        assert!(printed.contains("type Purchase implements Node & Dated\n  @key(fields: \"id\")\n"), "{printed}");
        assert!(printed.contains("  items(first: Int = 10, \"after this\" after: String): [Item!]!"), "{printed}");
        assert!(printed.contains("directive @subscribe(broker: String, topic: String, topics: [String!]) repeatable on FIELD_DEFINITION | OBJECT"));
        assert!(printed.contains("union Plain = Purchase\n"));
        assert!(printed.contains("directive @once(\"(not repeatable)\" a: Int) on FIELD_DEFINITION\n"), "{printed}");
        assert!(printed.contains("\"\"\"\nA purchase.\nTwo lines, \"quoted\".\n\"\"\"\ntype Purchase"), "{printed}");
    }
}

//! An operation cut at its root: the part of its root fields the supergraph serves and the
//! part the hub serves itself (its built-in and typed fields, introspection). Each part is a
//! document of its own with only the fragments and variables it uses.

use std::collections::HashSet;

use graphql_tools::parser::query::{
    Definition, Document, FragmentDefinition, InlineFragment, OperationDefinition, Selection, SelectionSet,
    TypeCondition, Value,
};

pub type Ast = Document<'static, String>;

/// The operation `name` picks: its index among the definitions.
pub fn pick(document: &Ast, name: Option<&str>) -> Option<usize> {
    let operations: Vec<(usize, Option<&String>)> = document
        .definitions
        .iter()
        .enumerate()
        .filter_map(|(i, definition)| match definition {
            Definition::Operation(operation) => Some((i, operation_name(operation))),
            Definition::Fragment(_) => None,
        })
        .collect();
    match name {
        Some(name) => operations.iter().find(|(_, n)| n.map(String::as_str) == Some(name)).map(|(i, _)| *i),
        None if operations.len() == 1 => Some(operations[0].0),
        None => None,
    }
}

fn operation_name<'a>(operation: &'a OperationDefinition<'static, String>) -> Option<&'a String> {
    match operation {
        OperationDefinition::SelectionSet(_) => None,
        OperationDefinition::Query(query) => query.name.as_ref(),
        OperationDefinition::Mutation(mutation) => mutation.name.as_ref(),
        OperationDefinition::Subscription(subscription) => subscription.name.as_ref(),
    }
}

pub fn operation(document: &Ast, index: usize) -> &OperationDefinition<'static, String> {
    match &document.definitions[index] {
        Definition::Operation(operation) => operation,
        Definition::Fragment(_) => unreachable!("pick returns operations only"),
    }
}

pub fn selection_set<'a>(operation: &'a OperationDefinition<'static, String>) -> &'a SelectionSet<'static, String> {
    match operation {
        OperationDefinition::SelectionSet(set) => set,
        OperationDefinition::Query(query) => &query.selection_set,
        OperationDefinition::Mutation(mutation) => &mutation.selection_set,
        OperationDefinition::Subscription(subscription) => &subscription.selection_set,
    }
}

fn selection_set_mut<'a>(
    operation: &'a mut OperationDefinition<'static, String>,
) -> &'a mut SelectionSet<'static, String> {
    match operation {
        OperationDefinition::SelectionSet(set) => set,
        OperationDefinition::Query(query) => &mut query.selection_set,
        OperationDefinition::Mutation(mutation) => &mut mutation.selection_set,
        OperationDefinition::Subscription(subscription) => &mut subscription.selection_set,
    }
}

pub fn fragment<'a>(document: &'a Ast, name: &str) -> Option<&'a FragmentDefinition<'static, String>> {
    document.definitions.iter().find_map(|definition| match definition {
        Definition::Fragment(fragment) if fragment.name == name => Some(fragment),
        _ => None,
    })
}

/// The names of the root fields the operation selects, through its root fragments.
pub fn root_field_names(document: &Ast, set: &SelectionSet<'static, String>, names: &mut Vec<String>) {
    let mut seen = HashSet::new();
    collect_root_names(document, set, names, &mut seen);
}

fn collect_root_names(
    document: &Ast,
    set: &SelectionSet<'static, String>,
    names: &mut Vec<String>,
    seen: &mut HashSet<String>,
) {
    for selection in &set.items {
        match selection {
            Selection::Field(field) => names.push(field.name.clone()),
            Selection::InlineFragment(inline) => collect_root_names(document, &inline.selection_set, names, seen),
            Selection::FragmentSpread(spread) => {
                if seen.insert(spread.fragment_name.clone()) {
                    if let Some(fragment) = fragment(document, &spread.fragment_name) {
                        collect_root_names(document, &fragment.selection_set, names, seen);
                    }
                }
            }
        }
    }
}

/// The document of the operation at `index` with only the root fields `keep` accepts (root
/// fragment spreads inlined), the fragments it still uses and the variables it still uses.
/// `None` when no root field is left.
pub fn part(document: &Ast, index: usize, keep: &dyn Fn(&str) -> bool) -> Option<Ast> {
    let mut operation = operation(document, index).clone();
    let root = filter_root(document, selection_set(&operation), keep, &mut HashSet::new());
    if root.items.is_empty() {
        return None;
    }
    *selection_set_mut(&mut operation) = root;
    let mut fragments = Vec::new();
    let mut used = HashSet::new();
    used_fragments(document, selection_set(&operation), &mut used);
    for definition in &document.definitions {
        if let Definition::Fragment(fragment) = definition {
            if used.contains(&fragment.name) {
                fragments.push(Definition::Fragment(fragment.clone()));
            }
        }
    }
    let mut variables = HashSet::new();
    operation_variables(&operation, &mut variables);
    for definition in &fragments {
        if let Definition::Fragment(fragment) = definition {
            set_variables(&fragment.selection_set, &mut variables);
            directive_variables(&fragment.directives, &mut variables);
        }
    }
    retain_variables(&mut operation, &variables);
    let mut definitions = vec![Definition::Operation(operation)];
    definitions.extend(fragments);
    Some(Document { definitions })
}

fn filter_root(
    document: &Ast,
    set: &SelectionSet<'static, String>,
    keep: &dyn Fn(&str) -> bool,
    spreading: &mut HashSet<String>,
) -> SelectionSet<'static, String> {
    let mut items = Vec::new();
    for selection in &set.items {
        match selection {
            Selection::Field(field) => {
                if keep(&field.name) {
                    items.push(selection.clone());
                }
            }
            Selection::InlineFragment(inline) => {
                let inner = filter_root(document, &inline.selection_set, keep, spreading);
                if !inner.items.is_empty() {
                    items.push(Selection::InlineFragment(InlineFragment { selection_set: inner, ..inline.clone() }));
                }
            }
            Selection::FragmentSpread(spread) => {
                let Some(fragment) = fragment(document, &spread.fragment_name) else { continue };
                // A cycle is the validator's to report; here it just ends.
                if !spreading.insert(spread.fragment_name.clone()) {
                    continue;
                }
                let inner = filter_root(document, &fragment.selection_set, keep, spreading);
                spreading.remove(&spread.fragment_name);
                if !inner.items.is_empty() {
                    let TypeCondition::On(on) = &fragment.type_condition;
                    items.push(Selection::InlineFragment(InlineFragment {
                        position: spread.position,
                        type_condition: Some(TypeCondition::On(on.clone())),
                        directives: spread.directives.clone(),
                        selection_set: inner,
                    }));
                }
            }
        }
    }
    SelectionSet { span: set.span, items }
}

fn used_fragments(document: &Ast, set: &SelectionSet<'static, String>, used: &mut HashSet<String>) {
    for selection in &set.items {
        match selection {
            Selection::Field(field) => used_fragments(document, &field.selection_set, used),
            Selection::InlineFragment(inline) => used_fragments(document, &inline.selection_set, used),
            Selection::FragmentSpread(spread) => {
                if used.insert(spread.fragment_name.clone()) {
                    if let Some(fragment) = fragment(document, &spread.fragment_name) {
                        used_fragments(document, &fragment.selection_set, used);
                    }
                }
            }
        }
    }
}

fn operation_variables(operation: &OperationDefinition<'static, String>, variables: &mut HashSet<String>) {
    if let OperationDefinition::Query(query) = operation {
        directive_variables(&query.directives, variables);
    } else if let OperationDefinition::Mutation(mutation) = operation {
        directive_variables(&mutation.directives, variables);
    }
    set_variables(selection_set(operation), variables);
}

fn set_variables(set: &SelectionSet<'static, String>, variables: &mut HashSet<String>) {
    for selection in &set.items {
        match selection {
            Selection::Field(field) => {
                for (_, value) in &field.arguments {
                    value_variables(value, variables);
                }
                directive_variables(&field.directives, variables);
                set_variables(&field.selection_set, variables);
            }
            Selection::InlineFragment(inline) => {
                directive_variables(&inline.directives, variables);
                set_variables(&inline.selection_set, variables);
            }
            Selection::FragmentSpread(spread) => directive_variables(&spread.directives, variables),
        }
    }
}

fn directive_variables(
    directives: &[graphql_tools::parser::query::Directive<'static, String>],
    variables: &mut HashSet<String>,
) {
    for directive in directives {
        for (_, value) in &directive.arguments {
            value_variables(value, variables);
        }
    }
}

fn value_variables(value: &Value<'static, String>, variables: &mut HashSet<String>) {
    match value {
        Value::Variable(name) => {
            variables.insert(name.clone());
        }
        Value::List(items) => items.iter().for_each(|item| value_variables(item, variables)),
        Value::Object(fields) => fields.iter().for_each(|(_, value)| value_variables(value, variables)),
        _ => {}
    }
}

fn retain_variables(operation: &mut OperationDefinition<'static, String>, used: &HashSet<String>) {
    let definitions = match operation {
        OperationDefinition::SelectionSet(_) => return,
        OperationDefinition::Query(query) => &mut query.variable_definitions,
        OperationDefinition::Mutation(mutation) => &mut mutation.variable_definitions,
        OperationDefinition::Subscription(subscription) => &mut subscription.variable_definitions,
    };
    definitions.retain(|definition| used.contains(&definition.name));
}

/// Every variable the operation's `@skip`/`@include` conditions read (its fragments' too).
pub fn condition_variables(document: &Ast, set: &SelectionSet<'static, String>, names: &mut Vec<String>) {
    let mut seen = HashSet::new();
    conditions_in(document, set, names, &mut seen);
}

fn conditions_in(
    document: &Ast,
    set: &SelectionSet<'static, String>,
    names: &mut Vec<String>,
    seen: &mut HashSet<String>,
) {
    let note = |directives: &[graphql_tools::parser::query::Directive<'static, String>], names: &mut Vec<String>| {
        for directive in directives.iter().filter(|d| d.name == "skip" || d.name == "include") {
            for (_, value) in &directive.arguments {
                if let Value::Variable(name) = value {
                    if !names.contains(name) {
                        names.push(name.clone());
                    }
                }
            }
        }
    };
    for selection in &set.items {
        match selection {
            Selection::Field(field) => {
                note(&field.directives, names);
                conditions_in(document, &field.selection_set, names, seen);
            }
            Selection::InlineFragment(inline) => {
                note(&inline.directives, names);
                conditions_in(document, &inline.selection_set, names, seen);
            }
            Selection::FragmentSpread(spread) => {
                note(&spread.directives, names);
                if seen.insert(spread.fragment_name.clone()) {
                    if let Some(fragment) = fragment(document, &spread.fragment_name) {
                        conditions_in(document, &fragment.selection_set, names, seen);
                    }
                }
            }
        }
    }
}

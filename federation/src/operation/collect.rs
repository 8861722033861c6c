//! The spec's CollectFields over an operation's syntax tree: the fields a selection set selects
//! for an object, by response key in selection order, with the fragments that apply to it
//! spread (each once) and `@skip`/`@include` decided. Projection and introspection both walk
//! selections this way.

use std::collections::HashSet;

use graphql_tools::parser::query::{Directive, Field, Selection, SelectionSet, TypeCondition, Value};

use super::split::{fragment, Ast};

/// Fields by response key, each with every occurrence of it (their selections merge).
pub type Grouped<'q> = Vec<(String, Vec<&'q Field<'static, String>>)>;

pub struct Collect<'q, 'f> {
    pub document: &'q Ast,
    /// Whether a fragment on this type condition applies to the object.
    pub applies: &'f dyn Fn(&str) -> bool,
    /// The value of a boolean variable.
    pub flag: &'f dyn Fn(&str) -> bool,
}

impl<'q> Collect<'q, '_> {
    /// Adds what `set` selects to `grouped`; `spread` holds the fragments spread so far.
    pub fn fields(
        &self,
        set: &'q SelectionSet<'static, String>,
        grouped: &mut Grouped<'q>,
        spread: &mut HashSet<&'q str>,
    ) {
        for selection in &set.items {
            match selection {
                Selection::Field(field) => {
                    if !self.included(&field.directives) {
                        continue;
                    }
                    let key = field.alias.as_ref().unwrap_or(&field.name);
                    match grouped.iter_mut().find(|(existing, _)| existing == key) {
                        Some((_, fields)) => fields.push(field),
                        None => grouped.push((key.clone(), vec![field])),
                    }
                }
                Selection::InlineFragment(inline) => {
                    let applies = match &inline.type_condition {
                        None => true,
                        Some(TypeCondition::On(condition)) => (self.applies)(condition),
                    };
                    if applies && self.included(&inline.directives) {
                        self.fields(&inline.selection_set, grouped, spread);
                    }
                }
                Selection::FragmentSpread(fragment_spread) => {
                    if !self.included(&fragment_spread.directives) {
                        continue;
                    }
                    let Some(definition) = fragment(self.document, &fragment_spread.fragment_name) else { continue };
                    let TypeCondition::On(condition) = &definition.type_condition;
                    if (self.applies)(condition) && spread.insert(definition.name.as_str()) {
                        self.fields(&definition.selection_set, grouped, spread);
                    }
                }
            }
        }
    }

    /// `@skip(if:)` and `@include(if:)`, with literal or variable conditions.
    pub fn included(&self, directives: &[Directive<'static, String>]) -> bool {
        directives.iter().all(|directive| {
            let condition = directive.arguments.iter().find(|(name, _)| name == "if").map(|(_, value)| match value {
                Value::Boolean(flag) => *flag,
                Value::Variable(name) => (self.flag)(name),
                _ => false,
            });
            match directive.name.as_str() {
                "skip" => condition != Some(true),
                "include" => condition != Some(false),
                _ => true,
            }
        })
    }
}

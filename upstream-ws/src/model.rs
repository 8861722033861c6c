//! The upstream's type system, read from introspection or from SDL into one neutral model that
//! the hub turns into schema types.

use std::collections::BTreeMap;

use async_graphql_parser::types::{
    BaseType, FieldDefinition, InputValueDefinition, ServiceDocument, Type, TypeKind, TypeSystemDefinition,
};
use serde_json::Value;

/// The introspection query the hub sends each upstream at start.
pub const INTROSPECTION_QUERY: &str = r#"query SubhubIntrospection {
  __schema {
    subscriptionType { name }
    types {
      kind name description
      fields(includeDeprecated: true) { name description args { name type { ...T } defaultValue } type { ...T } }
      inputFields { name type { ...T } defaultValue }
      interfaces { name }
      enumValues(includeDeprecated: true) { name }
      possibleTypes { name }
    }
  }
}
fragment T on __Type { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name ofType { kind name } } } } } } }"#;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    Object,
    Interface,
    Union,
    Enum,
    InputObject,
    Scalar,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TypeExpr {
    Named(String),
    NonNull(Box<TypeExpr>),
    List(Box<TypeExpr>),
}

impl TypeExpr {
    /// The named type under any list and non-null wrappers.
    pub fn base(&self) -> &str {
        match self {
            TypeExpr::Named(name) => name,
            TypeExpr::NonNull(inner) | TypeExpr::List(inner) => inner.base(),
        }
    }
}

#[derive(Clone, Debug)]
pub struct ArgDef {
    pub name: String,
    pub ty: TypeExpr,
    /// A GraphQL literal, as introspection gives it.
    pub default: Option<String>,
}

#[derive(Clone, Debug)]
pub struct FieldDef {
    pub name: String,
    pub description: Option<String>,
    pub args: Vec<ArgDef>,
    pub ty: TypeExpr,
}

#[derive(Clone, Debug)]
pub struct TypeDef {
    pub kind: Kind,
    pub name: String,
    pub description: Option<String>,
    pub fields: Vec<FieldDef>,
    pub input_fields: Vec<ArgDef>,
    pub interfaces: Vec<String>,
    pub possible_types: Vec<String>,
    pub enum_values: Vec<String>,
}

/// An upstream schema: its subscription root and every named type.
#[derive(Clone, Debug, Default)]
pub struct TypeModel {
    pub subscription: Option<String>,
    pub types: BTreeMap<String, TypeDef>,
}

/// GraphQL's built-in scalars, which are never namespaced.
pub fn is_builtin_scalar(name: &str) -> bool {
    matches!(name, "String" | "Int" | "Float" | "Boolean" | "ID")
}

impl TypeModel {
    /// The subscription root's fields.
    pub fn subscription_fields(&self) -> &[FieldDef] {
        self.subscription.as_ref().and_then(|root| self.types.get(root)).map_or(&[], |root| &root.fields)
    }

    /// Every type the subscription fields reach (through field, argument, input-field,
    /// interface and possible types), excluding the root and built-in scalars.
    pub fn reachable(&self) -> Vec<&TypeDef> {
        let mut seen = std::collections::BTreeSet::new();
        let mut stack: Vec<&str> = Vec::new();
        for field in self.subscription_fields() {
            stack.push(field.ty.base());
            stack.extend(field.args.iter().map(|a| a.ty.base()));
        }
        while let Some(name) = stack.pop() {
            if is_builtin_scalar(name) || name.starts_with("__") || !seen.insert(name) {
                continue;
            }
            let Some(def) = self.types.get(name) else { continue };
            for field in &def.fields {
                stack.push(field.ty.base());
                stack.extend(field.args.iter().map(|a| a.ty.base()));
            }
            stack.extend(def.input_fields.iter().map(|f| f.ty.base()));
            stack.extend(def.interfaces.iter().map(String::as_str));
            stack.extend(def.possible_types.iter().map(String::as_str));
        }
        seen.into_iter().filter_map(|name| self.types.get(name)).collect()
    }

    /// Reads the `data` of the introspection query's result.
    pub fn from_introspection(data: &Value) -> Result<Self, String> {
        let schema = &data["__schema"];
        let types = schema["types"].as_array().ok_or("introspection result has no __schema.types")?;
        let subscription = schema["subscriptionType"]["name"].as_str().map(str::to_owned);
        let mut model = TypeModel { subscription, types: BTreeMap::new() };
        for ty in types {
            let name = ty["name"].as_str().ok_or("a type without a name")?.to_owned();
            let kind = match ty["kind"].as_str() {
                Some("OBJECT") => Kind::Object,
                Some("INTERFACE") => Kind::Interface,
                Some("UNION") => Kind::Union,
                Some("ENUM") => Kind::Enum,
                Some("INPUT_OBJECT") => Kind::InputObject,
                Some("SCALAR") => Kind::Scalar,
                other => return Err(format!("type {name} has unknown kind {other:?}")),
            };
            let names = |key: &str| -> Vec<String> {
                ty[key]
                    .as_array()
                    .map_or(Vec::new(), |a| a.iter().filter_map(|v| v["name"].as_str().map(str::to_owned)).collect())
            };
            let args = |list: &Value| -> Result<Vec<ArgDef>, String> {
                list.as_array()
                    .map_or(&[][..], Vec::as_slice)
                    .iter()
                    .map(|arg| {
                        Ok(ArgDef {
                            name: arg["name"].as_str().ok_or("an argument without a name")?.to_owned(),
                            ty: introspected_type(&arg["type"])?,
                            default: arg["defaultValue"].as_str().map(str::to_owned),
                        })
                    })
                    .collect()
            };
            let mut fields = Vec::new();
            for field in ty["fields"].as_array().map_or(&[][..], Vec::as_slice) {
                fields.push(FieldDef {
                    name: field["name"].as_str().ok_or("a field without a name")?.to_owned(),
                    description: field["description"].as_str().map(str::to_owned),
                    args: args(&field["args"])?,
                    ty: introspected_type(&field["type"])?,
                });
            }
            let def = TypeDef {
                kind,
                name: name.clone(),
                description: ty["description"].as_str().map(str::to_owned),
                fields,
                input_fields: args(&ty["inputFields"])?,
                interfaces: names("interfaces"),
                possible_types: names("possibleTypes"),
                enum_values: names("enumValues"),
            };
            model.types.insert(name, def);
        }
        Ok(model)
    }

    /// Reads an SDL document.
    pub fn from_sdl(sdl: &str) -> Result<Self, String> {
        let document: ServiceDocument = async_graphql_parser::parse_schema(sdl).map_err(|e| e.to_string())?;
        let mut model = TypeModel::default();
        for definition in document.definitions {
            match definition {
                TypeSystemDefinition::Schema(schema) => {
                    model.subscription = schema.node.subscription.map(|s| s.node.to_string());
                }
                TypeSystemDefinition::Type(ty) => {
                    let ty = ty.node;
                    let name = ty.name.node.to_string();
                    let mut def = TypeDef {
                        kind: Kind::Scalar,
                        name: name.clone(),
                        description: ty.description.map(|d| d.node),
                        fields: Vec::new(),
                        input_fields: Vec::new(),
                        interfaces: Vec::new(),
                        possible_types: Vec::new(),
                        enum_values: Vec::new(),
                    };
                    match ty.kind {
                        TypeKind::Scalar => {}
                        TypeKind::Object(object) => {
                            def.kind = Kind::Object;
                            def.interfaces = object.implements.iter().map(|i| i.node.to_string()).collect();
                            def.fields = object.fields.iter().map(|f| sdl_field(&f.node)).collect();
                        }
                        TypeKind::Interface(interface) => {
                            def.kind = Kind::Interface;
                            def.interfaces = interface.implements.iter().map(|i| i.node.to_string()).collect();
                            def.fields = interface.fields.iter().map(|f| sdl_field(&f.node)).collect();
                        }
                        TypeKind::Union(union) => {
                            def.kind = Kind::Union;
                            def.possible_types = union.members.iter().map(|m| m.node.to_string()).collect();
                        }
                        TypeKind::Enum(values) => {
                            def.kind = Kind::Enum;
                            def.enum_values = values.values.iter().map(|v| v.node.value.node.to_string()).collect();
                        }
                        TypeKind::InputObject(input) => {
                            def.kind = Kind::InputObject;
                            def.input_fields = input.fields.iter().map(|f| sdl_arg(&f.node)).collect();
                        }
                    }
                    model.types.insert(name, def);
                }
                TypeSystemDefinition::Directive(_) => {}
            }
        }
        if model.subscription.is_none() && model.types.contains_key("Subscription") {
            model.subscription = Some("Subscription".to_owned());
        }
        Ok(model)
    }
}

fn introspected_type(value: &Value) -> Result<TypeExpr, String> {
    match value["kind"].as_str() {
        Some("NON_NULL") => Ok(TypeExpr::NonNull(Box::new(introspected_type(&value["ofType"])?))),
        Some("LIST") => Ok(TypeExpr::List(Box::new(introspected_type(&value["ofType"])?))),
        Some(_) => Ok(TypeExpr::Named(value["name"].as_str().ok_or("a named type without a name")?.to_owned())),
        None => Err("a type reference without a kind".to_owned()),
    }
}

fn sdl_arg(value: &InputValueDefinition) -> ArgDef {
    ArgDef {
        name: value.name.node.to_string(),
        ty: sdl_type(&value.ty.node),
        default: value.default_value.as_ref().map(|d| d.node.to_string()),
    }
}

fn sdl_field(field: &FieldDefinition) -> FieldDef {
    FieldDef {
        name: field.name.node.to_string(),
        description: field.description.as_ref().map(|d| d.node.clone()),
        args: field.arguments.iter().map(|a| sdl_arg(&a.node)).collect(),
        ty: sdl_type(&field.ty.node),
    }
}

fn sdl_type(ty: &Type) -> TypeExpr {
    let base = match &ty.base {
        BaseType::Named(name) => TypeExpr::Named(name.to_string()),
        BaseType::List(inner) => TypeExpr::List(Box::new(sdl_type(inner))),
    };
    if ty.nullable {
        base
    } else {
        TypeExpr::NonNull(Box::new(base))
    }
}

//! What code generation and validation know about a procedure's types: the [`Input`] and
//! [`Output`] bounds, [`TypeInfo`] (TypeScript names and declarations, JSON Schema) and
//! [`TsDeclaration`]. `oxrpc-codegen` reads these; applications rarely need them.

use std::any::TypeId;
use std::fmt;

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::request_body::BodyKind;
use crate::validate::{SchemaError, Validator};

/// A type that can be a procedure's input.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be used as a procedure input",
    label = "this input type must implement `serde::Deserialize`, `ts_rs::TS` and `schemars::JsonSchema`",
    note = "add `#[derive(serde::Deserialize, ts_rs::TS, schemars::JsonSchema)]` to the type"
)]
pub trait Input: DeserializeOwned + ts_rs::TS + schemars::JsonSchema + Send + 'static {}
impl<T: DeserializeOwned + ts_rs::TS + schemars::JsonSchema + Send + 'static> Input for T {}

/// A type that can be a procedure's output.
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot be used as a procedure output",
    label = "this output type must implement `serde::Serialize`, `ts_rs::TS` and `schemars::JsonSchema`",
    note = "add `#[derive(serde::Serialize, ts_rs::TS, schemars::JsonSchema)]` to the type"
)]
pub trait Output: Serialize + ts_rs::TS + schemars::JsonSchema + Send + 'static {}
impl<T: Serialize + ts_rs::TS + schemars::JsonSchema + Send + 'static> Output for T {}

/// One TypeScript declaration a procedure's types depend on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TsDeclaration {
    /// The TypeScript identifier, e.g. `User` (without generic parameters).
    pub ident: String,
    /// The Rust type behind it, for error messages.
    pub rust_name: &'static str,
    /// Identifies the Rust type (generic types: with placeholders for their parameters).
    pub type_id: TypeId,
    /// `export type User = { … };`, preceded by its JSDoc if the type has docs.
    pub code: String,
}

/// Type information about an input or an output, for code generation and validation.
#[derive(Clone, Copy)]
pub struct TypeInfo {
    rust_name: &'static str,
    is_unit: bool,
    accepts_undefined: fn() -> bool,
    body_kind: fn() -> Option<BodyKind>,
    ts_name: fn(&ts_rs::Config) -> String,
    ts_declarations: fn(&ts_rs::Config, &mut Vec<TsDeclaration>),
    json_schema: fn() -> schemars::Schema,
}

impl TypeInfo {
    /// An input: its schema describes what deserializes (schemars' deserialize contract).
    pub(crate) fn of_input<T: Input>() -> Self {
        TypeInfo {
            accepts_undefined: accepts_null::<T>,
            body_kind: body_kind_of::<T>,
            ..Self::of_type::<T>(input_schema::<T>)
        }
    }

    /// An output: its schema describes what serializes (schemars' serialize contract).
    pub(crate) fn of_output<T: ts_rs::TS + schemars::JsonSchema + 'static>() -> Self {
        Self::of_type::<T>(output_schema::<T>)
    }

    // Every part is a plain function (not a closure), so a type costs no call shims.
    fn of_type<T: ts_rs::TS + schemars::JsonSchema + 'static>(
        json_schema: fn() -> schemars::Schema,
    ) -> Self {
        TypeInfo {
            rust_name: std::any::type_name::<T>(),
            is_unit: TypeId::of::<T>() == TypeId::of::<()>(),
            accepts_undefined: never_undefined,
            body_kind: no_body,
            ts_name: T::name,
            ts_declarations: collect_declarations::<T>,
            json_schema,
        }
    }

    /// The Rust type's name, e.g. `my_api::User`.
    pub fn rust_name(&self) -> &'static str {
        self.rust_name
    }

    /// Whether the type is `()`: no input (`void`), or no output (`undefined`).
    pub fn is_unit(&self) -> bool {
        self.is_unit
    }

    /// Whether an input of this type may be left out by the client (`()`, `Option<T>`, …).
    pub fn accepts_undefined(&self) -> bool {
        self.is_unit || (self.accepts_undefined)()
    }

    /// Whether the input is a binary or multipart body rather than JSON.
    pub(crate) fn body_kind(&self) -> Option<BodyKind> {
        (self.body_kind)()
    }

    /// The TypeScript type expression, e.g. `Array<User>`.
    pub fn ts_name(&self, config: &ts_rs::Config) -> String {
        (self.ts_name)(config)
    }

    /// Every named type this type depends on, itself included, each once.
    pub fn ts_declarations(&self, config: &ts_rs::Config) -> Vec<TsDeclaration> {
        let mut out = Vec::new();
        (self.ts_declarations)(config, &mut out);
        out
    }

    /// The JSON Schema of the type (a root schema with its `$defs`), validation constraints
    /// included: what deserializes for inputs, what serializes for outputs.
    pub fn json_schema(&self) -> schemars::Schema {
        (self.json_schema)()
    }

    /// The type's schema, compiled for validation.
    pub fn validator(&self) -> Result<Validator, SchemaError> {
        Validator::new(self.json_schema().as_value())
    }
}

fn accepts_null<T: Input>() -> bool {
    serde_json::from_str::<T>("null").is_ok()
}

fn never_undefined() -> bool {
    false
}

fn body_kind_of<T: Input>() -> Option<BodyKind> {
    BodyKind::of_schema_id(&T::schema_id())
}

fn no_body() -> Option<BodyKind> {
    None
}

fn input_schema<T: schemars::JsonSchema>() -> schemars::Schema {
    schemars::generate::SchemaSettings::default()
        .for_deserialize()
        .into_generator()
        .into_root_schema_for::<T>()
}

fn output_schema<T: schemars::JsonSchema>() -> schemars::Schema {
    schemars::generate::SchemaSettings::default()
        .for_serialize()
        .into_generator()
        .into_root_schema_for::<T>()
}

impl fmt::Debug for TypeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TypeInfo").field(&self.rust_name).finish()
    }
}

/// A declarable type's docs, declaration and identifier, for a configuration.
type Declare = fn(&ts_rs::Config) -> (Option<String>, String, String);

fn declare<U: ts_rs::TS + ?Sized>(cfg: &ts_rs::Config) -> (Option<String>, String, String) {
    (U::docs(), U::decl(cfg), U::ident(cfg))
}

/// Walks `T` and everything it refers to, collecting each declarable type once.
fn collect_declarations<T: ts_rs::TS + 'static>(cfg: &ts_rs::Config, out: &mut Vec<TsDeclaration>) {
    struct Visit<'a> {
        cfg: &'a ts_rs::Config,
        out: &'a mut Vec<TsDeclaration>,
    }
    impl Visit<'_> {
        /// Adds a declaration unless the type has one already; whether it did.
        fn add(&mut self, type_id: TypeId, rust_name: &'static str, declare: Declare) -> bool {
            if self.out.iter().any(|d| d.type_id == type_id) {
                return false;
            }
            let (docs, decl, ident) = declare(self.cfg);
            let mut code = docs.unwrap_or_default();
            code.push_str("export ");
            code.push_str(&decl);
            self.out.push(TsDeclaration {
                ident,
                rust_name,
                type_id,
                code,
            });
            true
        }
    }
    impl ts_rs::TypeVisitor for Visit<'_> {
        fn visit<U: ts_rs::TS + 'static + ?Sized>(&mut self) {
            if U::output_path().is_none() {
                // Not declarable itself (a primitive or a wrapper such as `Vec<T>`); its type
                // parameters may be. (Its `visit_dependencies` would bypass the dedup below
                // and loop forever on recursive types.)
                U::visit_generics(self);
                return;
            }
            let type_id = TypeId::of::<U::WithoutGenerics>();
            if self.add(type_id, std::any::type_name::<U>(), declare::<U>) {
                U::visit_generics(self);
                U::visit_dependencies(self);
            }
        }
    }
    ts_rs::TypeVisitor::visit::<T>(&mut Visit { cfg, out });
}

/// `alloc::vec::Vec<my_api::User>` → `Vec<User>`.
pub(crate) fn short_type_name(full: &str) -> String {
    let mut out = String::with_capacity(full.len());
    let mut segment_start = 0;
    for (i, c) in full.char_indices() {
        if c == ':' {
            segment_start = i + 1;
        } else if matches!(c, '<' | '>' | ',' | ' ' | '(' | ')' | '[' | ']' | ';' | '&') {
            out.push_str(&full[segment_start..i]);
            out.push(c);
            segment_start = i + 1;
        }
    }
    out.push_str(&full[segment_start..]);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_type_names() {
        assert_eq!(
            short_type_name("alloc::vec::Vec<my_api::User>"),
            "Vec<User>"
        );
        assert_eq!(short_type_name("u32"), "u32");
        assert_eq!(short_type_name("(a::B, c::D)"), "(B, D)");
    }
}

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
///
/// Every part is a plain function of the type (no closures, nothing computed): a `TypeInfo` is
/// a constant, and all the work behind it (writing the JSON Schema, walking the TypeScript
/// declarations) is compiled once in `oxrpc`, not once per type (issue 15: per-procedure code).
#[derive(Clone, Copy)]
pub struct TypeInfo {
    rust_name: fn() -> &'static str,
    type_id: fn() -> TypeId,
    accepts_undefined: fn() -> bool,
    ts_name: fn(&ts_rs::Config) -> String,
    ts_declarations: fn(&ts_rs::Config, &mut Vec<TsDeclaration>),
    schema: root_schema::Parts,
    /// Whose behaviour the schema describes: deserializing (inputs) or serializing (outputs).
    deserialize: bool,
}

impl TypeInfo {
    /// An input: its schema describes what deserializes (schemars' deserialize contract).
    pub(crate) const fn of_input<T: Input>() -> Self {
        TypeInfo {
            accepts_undefined: accepts_null::<T>,
            deserialize: true,
            ..Self::of_type::<T>()
        }
    }

    /// An output: its schema describes what serializes (schemars' serialize contract).
    pub(crate) const fn of_output<T: ts_rs::TS + schemars::JsonSchema + 'static>() -> Self {
        Self::of_type::<T>()
    }

    const fn of_type<T: ts_rs::TS + schemars::JsonSchema + 'static>() -> Self {
        TypeInfo {
            rust_name: std::any::type_name::<T>,
            type_id: TypeId::of::<T>,
            accepts_undefined: never_undefined,
            ts_name: T::name,
            ts_declarations: collect_declarations::<T>,
            schema: root_schema::Parts::of::<T>(),
            deserialize: false,
        }
    }

    /// The Rust type's name, e.g. `my_api::User`.
    pub fn rust_name(&self) -> &'static str {
        (self.rust_name)()
    }

    /// Whether the type is `()`: no input (`void`), or no output (`undefined`).
    pub fn is_unit(&self) -> bool {
        (self.type_id)() == TypeId::of::<()>()
    }

    /// Whether an input of this type may be left out by the client (`()`, `Option<T>`, …).
    pub fn accepts_undefined(&self) -> bool {
        self.is_unit() || (self.accepts_undefined)()
    }

    /// Whether the input is a binary or multipart body rather than JSON.
    pub(crate) fn body_kind(&self) -> Option<BodyKind> {
        BodyKind::of_schema_id(&self.schema.id())
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
        let settings = schemars::generate::SchemaSettings::default();
        let settings = if self.deserialize {
            settings.for_deserialize()
        } else {
            settings.for_serialize()
        };
        self.schema.root(settings)
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

/// A root JSON Schema written by schemars' generic `into_root_schema_for`, compiled once for a
/// stand-in type instead of once per input and output type (it was the biggest piece of code
/// oxrpc compiled per procedure). The stand-in answers with the functions of the type whose
/// schema is being written, so the schema is the same as `into_root_schema_for::<T>()`'s.
mod root_schema {
    use std::borrow::Cow;
    use std::cell::Cell;

    use schemars::generate::SchemaSettings;
    use schemars::{JsonSchema, Schema, SchemaGenerator};

    /// What schemars' root schema code asks of a type.
    #[derive(Clone, Copy)]
    pub(super) struct Parts {
        name: fn() -> Cow<'static, str>,
        id: fn() -> Cow<'static, str>,
        schema: fn(&mut SchemaGenerator) -> Schema,
    }

    impl Parts {
        pub(super) const fn of<T: JsonSchema>() -> Self {
            Parts {
                name: T::schema_name,
                id: T::schema_id,
                schema: T::json_schema,
            }
        }

        pub(super) fn id(&self) -> Cow<'static, str> {
            (self.id)()
        }

        pub(super) fn root(self, settings: SchemaSettings) -> Schema {
            let _current = Current::set(self);
            settings.into_generator().into_root_schema_for::<StandIn>()
        }
    }

    thread_local! {
        /// The type the stand-in stands for while a root schema is written on this thread.
        static CURRENT: Cell<Option<Parts>> = const { Cell::new(None) };
    }

    /// Sets `CURRENT` and puts back what was there when dropped (a type's `json_schema` may
    /// write another root schema; a panic in it leaves nothing behind).
    struct Current(Option<Parts>);

    impl Current {
        fn set(parts: Parts) -> Self {
            Current(CURRENT.replace(Some(parts)))
        }

        fn get() -> Parts {
            CURRENT
                .get()
                .expect("the stand-in schema type is only used inside `Parts::root`")
        }
    }

    /// Whether no root schema is being written on this thread (for tests).
    #[cfg(test)]
    pub(super) fn is_idle() -> bool {
        CURRENT.get().is_none()
    }

    impl Drop for Current {
        fn drop(&mut self) {
            CURRENT.set(self.0);
        }
    }

    struct StandIn;

    impl JsonSchema for StandIn {
        fn schema_name() -> Cow<'static, str> {
            (Current::get().name)()
        }

        fn schema_id() -> Cow<'static, str> {
            (Current::get().id)()
        }

        fn json_schema(generator: &mut SchemaGenerator) -> Schema {
            (Current::get().schema)(generator)
        }
    }
}

impl fmt::Debug for TypeInfo {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("TypeInfo").field(&self.rust_name()).finish()
    }
}

/// Walks `T` and everything it refers to, collecting each declarable type once.
fn collect_declarations<T: ts_rs::TS + 'static>(cfg: &ts_rs::Config, out: &mut Vec<TsDeclaration>) {
    ts_rs::TypeVisitor::visit::<T>(&mut Visit { cfg, out });
}

struct Visit<'a> {
    cfg: &'a ts_rs::Config,
    out: &'a mut Vec<TsDeclaration>,
}

/// What the walk asks of one type, as plain functions: `visit` (compiled for every type the
/// walk reaches) only fills this in, and the work is done once, in [`Visit::declare`].
struct Visited<'a> {
    output_path: fn() -> Option<std::path::PathBuf>,
    type_id: fn() -> TypeId,
    rust_name: fn() -> &'static str,
    docs: fn() -> Option<String>,
    decl: fn(&ts_rs::Config) -> String,
    ident: fn(&ts_rs::Config) -> String,
    visit_generics: fn(&mut Visit<'a>),
    visit_dependencies: fn(&mut Visit<'a>),
}

impl<'a> Visit<'a> {
    fn declare(&mut self, ty: &Visited<'a>) {
        if (ty.output_path)().is_none() {
            // Not declarable itself (a primitive or a wrapper such as `Vec<T>`); its type
            // parameters may be. (Its `visit_dependencies` would bypass the dedup below and
            // loop forever on recursive types.)
            (ty.visit_generics)(self);
            return;
        }
        let type_id = (ty.type_id)();
        if self.out.iter().any(|d| d.type_id == type_id) {
            return;
        }
        let mut code = (ty.docs)().unwrap_or_default();
        code.push_str("export ");
        code.push_str(&(ty.decl)(self.cfg));
        self.out.push(TsDeclaration {
            ident: (ty.ident)(self.cfg),
            rust_name: (ty.rust_name)(),
            type_id,
            code,
        });
        (ty.visit_generics)(self);
        (ty.visit_dependencies)(self);
    }
}

impl ts_rs::TypeVisitor for Visit<'_> {
    fn visit<U: ts_rs::TS + 'static + ?Sized>(&mut self) {
        self.declare(&Visited {
            output_path: U::output_path,
            type_id: TypeId::of::<U::WithoutGenerics>,
            rust_name: std::any::type_name::<U>,
            docs: U::docs,
            decl: U::decl,
            ident: U::ident,
            visit_generics: U::visit_generics,
            visit_dependencies: U::visit_dependencies,
        });
    }
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

    /// A type that refers to itself, with a nested type and a generic wrapper.
    #[derive(serde::Serialize, serde::Deserialize, ts_rs::TS, schemars::JsonSchema)]
    struct Node {
        /// A constraint the schema carries.
        #[schemars(length(min = 1))]
        label: String,
        children: Vec<Node>,
        leaf: Option<Leaf>,
    }

    #[derive(serde::Serialize, serde::Deserialize, ts_rs::TS, schemars::JsonSchema)]
    #[serde(tag = "kind", rename_all = "camelCase")]
    enum Leaf {
        Text { text: String },
        Number { value: f64 },
    }

    fn schemars_root<T: schemars::JsonSchema>(deserialize: bool) -> schemars::Schema {
        let settings = schemars::generate::SchemaSettings::default();
        let settings = if deserialize {
            settings.for_deserialize()
        } else {
            settings.for_serialize()
        };
        settings.into_generator().into_root_schema_for::<T>()
    }

    #[test]
    fn root_schemas_are_the_ones_schemars_writes_for_the_type_itself() {
        fn same<T: Input + Serialize>() {
            assert_eq!(
                TypeInfo::of_input::<T>().json_schema(),
                schemars_root::<T>(true),
                "input {}",
                std::any::type_name::<T>()
            );
            assert_eq!(
                TypeInfo::of_output::<T>().json_schema(),
                schemars_root::<T>(false),
                "output {}",
                std::any::type_name::<T>()
            );
        }
        same::<Node>();
        same::<Vec<Node>>();
        same::<Option<Leaf>>();
        same::<String>();
        same::<()>();
        // The recursive root refers to itself as `#`, as schemars' own root does.
        let schema = TypeInfo::of_input::<Node>().json_schema().to_value();
        assert_eq!(schema["properties"]["children"]["items"]["$ref"], "#");
        // Nothing is left behind for the next schema on this thread.
        assert!(root_schema::is_idle());
    }
}

//! A call's input into the procedure's input type.
//!
//! Everything that does not depend on the type (unit inputs, bodies, superjson values, missing
//! inputs, validation, error reporting) is done here once, by [`source`]; what is left for each
//! input type is one `serde_json::from_str::<I>` (see [`decode`]). That keeps the code a
//! procedure instantiates small: an API of a thousand procedures compiles each input type's
//! `Deserialize` once, for one deserializer, instead of once per deserializer and helper.

use std::any::Any;
use std::sync::OnceLock;

use crate::call::Call;
use crate::error::{Error, ErrorCode};
use crate::request_body::BodyKind;
use crate::serde_error::serde_issue;
use crate::types::{Input, TypeInfo, short_type_name};
use crate::upload;
use crate::validate::{SchemaError, UnknownFields, Validator};

/// A schema compiled on first use (so building a router, e.g. in a build script, stays cheap).
pub(crate) type LazyValidator = OnceLock<Result<Validator, SchemaError>>;

/// The compiled validator of `info`, or the error a call gets when its schema is unusable.
pub(crate) fn compiled<'a>(
    lazy: &'a LazyValidator,
    info: &TypeInfo,
) -> Result<&'a Validator, Error> {
    lazy.get_or_init(|| info.validator()).as_ref().map_err(|e| {
        Error::internal(e.clone()).with_message(format!(
            "Internal server error: the JSON Schema of `{}` cannot be used for validation",
            short_type_name(info.rust_name())
        ))
    })
}

/// A procedure's input type, with what decoding asks of it on every call worked out once:
/// whether it is `()`, and whether it is a binary or multipart body (read from its schema id,
/// which schemars writes with `format!` for generic types).
pub(crate) struct InputType {
    pub(crate) info: TypeInfo,
    pub(crate) validator: LazyValidator,
    unit: bool,
    body: Option<BodyKind>,
}

impl InputType {
    pub(crate) fn new(info: TypeInfo) -> Self {
        InputType {
            info,
            validator: LazyValidator::new(),
            unit: info.is_unit(),
            body: info.body_kind(),
        }
    }
}

/// Decodes the call's input as `I`: the only part of decoding that depends on the type.
pub(crate) fn decode<I: Input>(input: &InputType, call: &Call) -> Result<I, Error> {
    let (info, validator) = (&input.info, &input.validator);
    let mut value: Option<I> = None;
    let Some(text) = source(input, call, &mut value)? else {
        return match value {
            Some(value) => Ok(value),
            None => Err(Error::internal("a superjson input of an unexpected type")),
        };
    };
    match serde_json::from_str::<I>(text.text) {
        Ok(value) => {
            text.done();
            Ok(value)
        }
        Err(e) => Err(text.refused(info, validator, call, &e)),
    }
}

/// JSON text for `serde_json` to deserialize the input from.
struct Text<'a> {
    text: &'a str,
    /// Valid for the input's schema; else to be checked only if serde refuses it (the schema
    /// asks nothing serde does not check itself).
    checked: bool,
    /// A binary or multipart body waits for the input's `Deserialize` ([`crate::upload`]).
    body: bool,
}

impl Text<'_> {
    const fn json(text: &str, checked: bool) -> Text<'_> {
        Text {
            text,
            checked,
            body: false,
        }
    }

    /// After a successful deserialization.
    fn done(&self) {
        if self.body {
            upload::set_pending(None);
        }
    }

    /// The error for an input serde refused: for a body, what was wrong with the request; else
    /// the schema's issues when it was not checked yet and has some, else serde's own error as
    /// an issue at the place in the input it points at (the schema and serde agree almost
    /// always; when they don't, serde has the last word).
    fn refused(
        &self,
        info: &TypeInfo,
        validator: &LazyValidator,
        call: &Call,
        error: &serde_json::Error,
    ) -> Error {
        if self.body {
            upload::set_pending(None);
            return upload::bad_upload(error);
        }
        if !self.checked {
            match compiled(validator, info) {
                Ok(validator) => {
                    if let Err(e) = check(validator, self.text, call.options.unknown_fields) {
                        return e;
                    }
                }
                Err(e) => return e,
            }
        }
        serde_issue(self.text, error)
    }
}

/// Prepares the call's input for `serde_json`, without knowing its type: `None` when the input
/// is in `value` already (a [`crate::js::Value`] from its superjson envelope).
fn source<'a>(
    input: &InputType,
    call: &'a Call,
    value: &mut dyn Any,
) -> Result<Option<Text<'a>>, Error> {
    let (info, validator) = (&input.info, &input.validator);
    if input.unit {
        // A procedure without input ignores whatever was sent, as tRPC does.
        return Ok(Some(Text::json("null", true)));
    }
    match (input.body, call.take_body()) {
        (Some(_), Some(body)) => {
            // The input's `Deserialize` takes it from there.
            upload::set_pending(Some((body, call.options.unknown_fields)));
            return Ok(Some(Text {
                text: "null",
                checked: true,
                body: true,
            }));
        }
        (Some(kind), None) => {
            return Err(Error::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "`{}` takes a {} body: send {} with httpLink",
                    call.path,
                    kind.media_type(),
                    kind.client_value()
                ),
            ));
        }
        (None, Some(body)) => {
            return Err(Error::new(
                ErrorCode::UnsupportedMediaType,
                format!(
                    "`{}` takes JSON input, not {}",
                    call.path,
                    body.kind.media_type()
                ),
            ));
        }
        (None, None) => {}
    }
    if let Some(envelope) = &call.superjson_input
        && crate::js::Value::input_into(value, envelope.get())?
    {
        return Ok(None);
    }
    let validator = compiled(validator, info)?;
    let Some(raw) = call.input.as_ref() else {
        if !info.accepts_undefined() {
            return Err(Error::bad_request(format!(
                "Missing input: this procedure expects `{}`, but the request carried no input",
                short_type_name(info.rust_name())
            )));
        }
        check(validator, "null", call.options.unknown_fields)?;
        return Ok(Some(Text::json("null", true)));
    };
    // When serde checks everything the schema says, a value that deserializes is valid: no
    // JSON tree to build and walk, unless serde refuses it (then its issues are wanted).
    if validator.serde_checks_all() && call.options.unknown_fields == UnknownFields::Ignore {
        return Ok(Some(Text::json(raw.get(), false)));
    }
    check(validator, raw.get(), call.options.unknown_fields)?;
    Ok(Some(Text::json(raw.get(), true)))
}

/// Validates JSON text against the schema: its issues, or a parse error.
pub(crate) fn check(
    validator: &Validator,
    text: &str,
    unknown: UnknownFields,
) -> Result<(), Error> {
    let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
        Error::new(
            ErrorCode::ParseError,
            format!("Input is not valid JSON: {e}"),
        )
    })?;
    let issues = validator.validate(&value, unknown);
    if issues.is_empty() {
        Ok(())
    } else {
        Err(Error::invalid_input(issues))
    }
}

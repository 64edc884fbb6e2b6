//! Phase 2: semantic checks. Builds the plain model `emit` needs, keeping user tokens for spans.

use proc_macro2::Span;
use syn::spanned::Spanned;
use syn::{FnArg, GenericArgument, ItemFn, PathArguments, ReturnType, Type};

use crate::args::{Args, Kind};

/// The output as written: `T`, or `Result<T, E>` whose `T` is the wire type.
pub(crate) struct OutputModel {
    pub(crate) ty: Type,
    pub(crate) is_result: bool,
    /// For subscriptions: whether the stream already yields `Result`s.
    pub(crate) items_are_results: bool,
}

/// `impl Stream<Item = X>` → `X`; `SomeStream<'a, X>` → `X` (its last type argument).
fn stream_item(ty: &Type) -> Option<&Type> {
    let args = match ty {
        Type::ImplTrait(t) => t.bounds.iter().find_map(|b| match b {
            syn::TypeParamBound::Trait(t) => t.path.segments.last().map(|s| &s.arguments),
            _ => None,
        })?,
        Type::Path(p) => &p.path.segments.last()?.arguments,
        _ => return None,
    };
    let PathArguments::AngleBracketed(args) = args else {
        return None;
    };
    args.args.iter().rev().find_map(|a| match a {
        GenericArgument::AssocType(assoc) if assoc.ident == "Item" => Some(&assoc.ty),
        GenericArgument::Type(t) => Some(t),
        _ => None,
    })
}

fn is_result_type(ty: &Type) -> bool {
    matches!(ty, Type::Path(p) if p.path.segments.last().is_some_and(|s| s.ident == "Result"))
}

/// Everything `emit` needs to know about one procedure.
pub(crate) struct Model {
    pub(crate) kind: Kind,
    pub(crate) layer: Option<syn::Type>,
    pub(crate) meta: Vec<syn::Expr>,
    pub(crate) name: String,
    pub(crate) docs: String,
    pub(crate) ctx: Option<Type>,
    pub(crate) input: Option<Type>,
    pub(crate) output: OutputModel,
}

/// `by_id` → `byId`; leading underscores are kept.
fn lower_camel(ident: &str) -> String {
    let trimmed = ident.trim_start_matches('_');
    let mut out = String::from(&ident[..ident.len() - trimmed.len()]);
    let mut upper_next = false;
    for c in trimmed.chars() {
        if c == '_' {
            upper_next = true;
        } else if upper_next {
            out.extend(c.to_uppercase());
            upper_next = false;
        } else {
            out.push(c);
        }
    }
    out
}

fn docs_of(func: &ItemFn) -> String {
    let mut lines = Vec::new();
    for attr in &func.attrs {
        if !attr.path().is_ident("doc") {
            continue;
        }
        if let syn::Meta::NameValue(nv) = &attr.meta
            && let syn::Expr::Lit(syn::ExprLit {
                lit: syn::Lit::Str(s),
                ..
            }) = &nv.value
        {
            let line = s.value();
            lines.push(
                line.strip_prefix(' ')
                    .unwrap_or(&line)
                    .trim_end()
                    .to_owned(),
            );
        }
    }
    lines.join("\n").trim().to_owned()
}

/// `Result<T, E>` / `Result<T>` (any path ending in `Result`) → `T`.
fn result_ok_type(ty: &Type) -> Option<Type> {
    let Type::Path(path) = ty else { return None };
    let last = path.path.segments.last()?;
    if last.ident != "Result" {
        return None;
    }
    let PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    match args.args.first()? {
        GenericArgument::Type(t) => Some(t.clone()),
        _ => None,
    }
}

/// Checks the function and the arguments; every problem found goes to `errors`.
pub(crate) fn build(args: Args, func: &ItemFn, errors: &mut Vec<syn::Error>) -> Option<Model> {
    let args_had_errors = !errors.is_empty();
    let sig = &func.sig;
    if sig.asyncness.is_none() {
        errors.push(syn::Error::new(
            sig.fn_token.span,
            "`#[procedure]` functions must be `async fn`: write `async fn` here",
        ));
    }
    if !sig.generics.params.is_empty() || sig.generics.where_clause.is_some() {
        errors.push(syn::Error::new(
            sig.generics.span(),
            "`#[procedure]` functions cannot be generic: a procedure needs concrete input and output types",
        ));
    }
    if let Some(variadic) = &sig.variadic {
        errors.push(syn::Error::new(
            variadic.span(),
            "`#[procedure]` functions cannot be variadic",
        ));
    }

    let mut ctx: Option<Type> = None;
    let mut input: Option<Type> = None;
    for (index, arg) in sig.inputs.iter().enumerate() {
        let pat_type = match arg {
            FnArg::Receiver(receiver) => {
                errors.push(syn::Error::new(
                    receiver.span(),
                    "`#[procedure]` cannot take `self`: write a free `async fn` and take the context as `ctx: &Ctx`",
                ));
                continue;
            }
            FnArg::Typed(pat_type) => pat_type,
        };
        if index >= 2 {
            errors.push(syn::Error::new(
                pat_type.span(),
                "too many parameters: a procedure takes at most a context (`ctx: &Ctx`) and one input; \
                 put several inputs into one struct",
            ));
            continue;
        }
        match &*pat_type.ty {
            Type::Reference(reference) => {
                if let Some(mutability) = reference.mutability {
                    errors.push(syn::Error::new(
                        mutability.span(),
                        "the context is shared by the calls of a request: take it as `&Ctx`, not `&mut Ctx`",
                    ));
                } else if input.is_some() {
                    errors.push(syn::Error::new(
                        pat_type.span(),
                        "the context parameter (`&Ctx`) must come before the input parameter",
                    ));
                } else if ctx.is_some() {
                    errors.push(syn::Error::new(
                        pat_type.span(),
                        "a procedure takes one context parameter; this is a second `&` parameter",
                    ));
                } else {
                    ctx = Some((*reference.elem).clone());
                }
            }
            ty => {
                if input.is_some() {
                    errors.push(syn::Error::new(
                        pat_type.span(),
                        "a procedure takes one input; put several inputs into one struct",
                    ));
                } else {
                    input = Some(ty.clone());
                }
            }
        }
    }

    let output = match &sig.output {
        ReturnType::Default => OutputModel {
            items_are_results: false,
            ty: syn::parse_quote_spanned!(sig.ident.span()=> ()),
            is_result: false,
        },
        ReturnType::Type(_, ty) => match result_ok_type(ty) {
            Some(ok) => OutputModel {
                items_are_results: stream_item(&ok).is_some_and(is_result_type),
                ty: ok,
                is_result: true,
            },
            None => OutputModel {
                items_are_results: stream_item(ty).is_some_and(is_result_type),
                ty: (**ty).clone(),
                is_result: false,
            },
        },
    };
    let is_subscription = matches!(args.kind, Some((Kind::Subscription, _)));
    if let Type::ImplTrait(t) = &output.ty
        && !is_subscription
    {
        errors.push(syn::Error::new(
            t.span(),
            "a procedure's output must be a named type (it appears in the generated TypeScript), not `impl Trait`",
        ));
    }

    let Some((kind, _)) = args.kind else {
        if args_had_errors {
            // The kind was probably among the rejected arguments: don't pile on.
            return None;
        }
        errors.push(syn::Error::new(
            Span::call_site(),
            "missing procedure kind: write `#[procedure(query)]`, `#[procedure(mutation)]` or `#[procedure(subscription)]`",
        ));
        return None;
    };
    let name = args
        .name
        .map_or_else(|| lower_camel(&sig.ident.to_string()), |n| n.value());
    Some(Model {
        kind,
        layer: args.layer,
        meta: args.meta,
        name,
        docs: docs_of(func),
        ctx,
        input,
        output,
    })
}

#[cfg(test)]
mod tests {
    use super::lower_camel;

    #[test]
    fn camel_case_names() {
        assert_eq!(lower_camel("by_id"), "byId");
        assert_eq!(lower_camel("greet"), "greet");
        assert_eq!(lower_camel("add_post_now"), "addPostNow");
        assert_eq!(lower_camel("_private_thing"), "_privateThing");
    }
}

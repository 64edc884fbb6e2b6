//! Phase 1: the attribute's arguments, as syntax.

use proc_macro2::{Span, TokenStream};
use syn::ext::IdentExt;
use syn::parse::{ParseStream, Parser};
use syn::{Expr, Ident, LitStr, Token, Type};

/// The procedure kinds the attribute accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Query,
    Mutation,
    Subscription,
}

/// What `#[procedure(...)]` said.
pub(crate) struct Args {
    pub(crate) kind: Option<(Kind, Span)>,
    pub(crate) name: Option<LitStr>,
    pub(crate) layer: Option<Type>,
    pub(crate) meta: Vec<Expr>,
}

const EXPECTED: &str =
    "expected one of: `query`, `mutation`, `subscription`, `name`, `use`, `meta`";

/// Parses the arguments, collecting every problem instead of stopping at the first.
pub(crate) fn parse(attr: TokenStream, errors: &mut Vec<syn::Error>) -> Args {
    let mut args = Args {
        kind: None,
        name: None,
        layer: None,
        meta: Vec::new(),
    };
    let parser = |input: ParseStream<'_>| -> syn::Result<()> {
        while !input.is_empty() {
            // `use` is a keyword, so accept keywords as argument names.
            let key = input.call(Ident::parse_any)?;
            let name = key.to_string();
            let has_value = input.peek(Token![=]);
            if has_value {
                input.parse::<Token![=]>()?;
            }
            match (name.as_str(), has_value) {
                ("query" | "mutation" | "subscription", false) => {
                    let kind = match name.as_str() {
                        "query" => Kind::Query,
                        "mutation" => Kind::Mutation,
                        _ => Kind::Subscription,
                    };
                    if args.kind.is_some() {
                        errors.push(syn::Error::new(
                            key.span(),
                            format!("duplicate procedure kind `{name}`: a procedure is one of `query`, `mutation` or `subscription`"),
                        ));
                    } else {
                        args.kind = Some((kind, key.span()));
                    }
                }
                ("query" | "mutation" | "subscription", true) => {
                    let value: Expr = input.parse()?;
                    errors.push(syn::Error::new_spanned(
                        value,
                        format!("`{name}` takes no value: write `#[procedure({name})]`"),
                    ));
                }
                ("name", true) => {
                    if input.peek(LitStr) {
                        let lit: LitStr = input.parse()?;
                        if args.name.is_some() {
                            errors.push(syn::Error::new(key.span(), "duplicate argument `name`"));
                        } else {
                            args.name = Some(lit);
                        }
                    } else {
                        let value: Expr = input.parse()?;
                        errors.push(syn::Error::new_spanned(
                            value,
                            "`name` takes a string literal: `name = \"byId\"`",
                        ));
                    }
                }
                ("use", true) => {
                    let ty: Type = input.parse()?;
                    if args.layer.is_some() {
                        errors.push(syn::Error::new(
                            key.span(),
                            "duplicate argument `use`: give one middleware, or a stack as a tuple: `use = (A, B)`",
                        ));
                    } else {
                        args.layer = Some(ty);
                    }
                }
                ("meta", true) => args.meta.push(input.parse()?),
                ("name" | "use" | "meta", false) => {
                    let example = match name.as_str() {
                        "name" => "name = \"byId\"",
                        "use" => "use = RequireUser",
                        _ => "meta = RequiresRole(\"admin\")",
                    };
                    errors.push(syn::Error::new(
                        key.span(),
                        format!("`{name}` needs a value: `{example}`"),
                    ));
                }
                _ => {
                    errors.push(syn::Error::new(
                        key.span(),
                        format!("unknown argument `{name}`, {EXPECTED}"),
                    ));
                    if has_value {
                        input.parse::<Expr>()?;
                    }
                }
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(())
    };
    if let Err(e) = parser.parse2(attr) {
        errors.push(e);
    }
    args
}

//! Phase 1: the attribute's arguments, as syntax.

use proc_macro2::{Span, TokenStream};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::{Expr, ExprLit, Lit, LitStr, Meta, Token};

/// The procedure kinds the attribute accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Query,
    Mutation,
}

/// What `#[procedure(...)]` said.
pub(crate) struct Args {
    pub(crate) kind: Option<(Kind, Span)>,
    pub(crate) name: Option<LitStr>,
}

const EXPECTED: &str = "expected one of: `query`, `mutation`, `name`";

/// Parses the arguments, collecting every problem instead of stopping at the first.
pub(crate) fn parse(attr: TokenStream, errors: &mut Vec<syn::Error>) -> Args {
    let mut args = Args {
        kind: None,
        name: None,
    };
    let metas = match Punctuated::<Meta, Token![,]>::parse_terminated.parse2(attr) {
        Ok(metas) => metas,
        Err(e) => {
            errors.push(e);
            return args;
        }
    };
    for meta in metas {
        let Some(ident) = meta.path().get_ident().map(ToString::to_string) else {
            errors.push(syn::Error::new_spanned(
                meta.path(),
                format!("unknown argument, {EXPECTED}"),
            ));
            continue;
        };
        match (ident.as_str(), &meta) {
            ("query" | "mutation", Meta::Path(path)) => {
                let kind = if ident == "query" {
                    Kind::Query
                } else {
                    Kind::Mutation
                };
                let span = path
                    .get_ident()
                    .map_or_else(Span::call_site, syn::Ident::span);
                if args.kind.is_some() {
                    errors.push(syn::Error::new(
                        span,
                        format!("duplicate procedure kind `{ident}`: a procedure is either a `query` or a `mutation`"),
                    ));
                } else {
                    args.kind = Some((kind, span));
                }
            }
            ("name", Meta::NameValue(nv)) => match &nv.value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(s), ..
                }) => {
                    if args.name.is_some() {
                        errors.push(syn::Error::new_spanned(
                            &nv.path,
                            "duplicate argument `name`",
                        ));
                    } else {
                        args.name = Some(s.clone());
                    }
                }
                other => errors.push(syn::Error::new_spanned(
                    other,
                    "`name` takes a string literal: `name = \"byId\"`",
                )),
            },
            ("query" | "mutation", other) => errors.push(syn::Error::new_spanned(
                other,
                format!("`{ident}` takes no value: write `#[procedure({ident})]`"),
            )),
            ("name", other) => errors.push(syn::Error::new_spanned(
                other,
                "`name` takes a string literal: `name = \"byId\"`",
            )),
            ("subscription", _) => errors.push(syn::Error::new_spanned(
                meta.path(),
                "`subscription` procedures are not supported yet; use `query` or `mutation`",
            )),
            (_, _) => errors.push(syn::Error::new_spanned(
                meta.path(),
                format!("unknown argument `{ident}`, {EXPECTED}"),
            )),
        }
    }
    args
}

//! The `#[procedure]` attribute of oxrpc. Use it through `oxrpc::procedure`; see the `oxrpc`
//! crate for what it expands to.

mod args;
mod emit;
mod model;

use proc_macro::TokenStream;

/// Turns an `async fn` into a tRPC procedure, keeping the function as written.
///
/// `#[procedure(query)]` or `#[procedure(mutation)]`, optionally with `name = "…"`.
/// See the `oxrpc` crate documentation for the expansion.
#[proc_macro_attribute]
pub fn procedure(attr: TokenStream, item: TokenStream) -> TokenStream {
    emit::expand(attr.into(), item.into()).into()
}

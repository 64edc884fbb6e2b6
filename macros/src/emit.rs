//! Phase 3: tokens. No decisions here beyond what the model says.

use proc_macro2::TokenStream;
use quote::{quote, quote_spanned};
use syn::ItemFn;
use syn::spanned::Spanned;

use crate::args::{self, Kind};
use crate::model::{self, Model};

/// The whole expansion; on errors the function is still emitted, plus a stand-in
/// `procedure()`, so one mistake gives one error.
#[allow(clippy::needless_pass_by_value)] // proc-macro entry points own their streams
pub(crate) fn expand(attr: TokenStream, item: TokenStream) -> TokenStream {
    let func: ItemFn = match syn::parse2(item.clone()) {
        Ok(func) => func,
        Err(_) => {
            let e = syn::Error::new_spanned(&item, "`#[procedure]` goes on an `async fn`");
            let err = e.to_compile_error();
            return quote! { #err #item };
        }
    };
    let mut errors = Vec::new();
    let args = args::parse(attr, &mut errors);
    let model = model::build(args, &func, &mut errors);
    match model {
        Some(model) if errors.is_empty() => emit(&func, &model),
        _ if func.sig.receiver().is_some() => {
            // Inside an `impl`: a companion struct cannot go there.
            let errors = errors.iter().map(syn::Error::to_compile_error);
            quote! { #(#errors)* #func }
        }
        _ => {
            let errors = errors.iter().map(syn::Error::to_compile_error);
            let vis = &func.vis;
            let ident = &func.sig.ident;
            quote! {
                #(#errors)*
                #func
                #[doc(hidden)]
                #[allow(non_camel_case_types)]
                #vis struct #ident {}
                impl #ident {
                    #[doc(hidden)]
                    #vis fn procedure<__Ctx>() -> ::oxrpc::Procedure<__Ctx> {
                        ::oxrpc::__private::unbuildable()
                    }
                }
            }
        }
    }
}

fn emit(func: &ItemFn, model: &Model) -> TokenStream {
    let vis = &func.vis;
    let ident = &func.sig.ident;
    let name = &model.name;
    let docs = &model.docs;
    let constructor = match model.kind {
        Kind::Query => quote!(query),
        Kind::Mutation => quote!(mutation),
        Kind::Subscription => quote!(subscription),
    };
    // Types keep the user's spans, so a missing trait points at the user's type.
    let input_ty = match &model.input {
        Some(ty) => quote_spanned!(ty.span()=> #ty),
        None => quote!(()),
    };
    let output_ty = &model.output.ty;
    // Queries and mutations name their output type; a subscription's stream type is inferred
    // (it is usually `impl Stream`), and its events are checked through `oxrpc::Event`.
    let type_args = if model.kind == Kind::Subscription {
        quote!(#input_ty, _, _, _, _)
    } else {
        let output_ty = quote_spanned!(output_ty.span()=> #output_ty);
        quote!(#input_ty, #output_ty, _, _)
    };
    let input_arg = model.input.as_ref().map(|_| quote!(__input));
    // The context the function itself receives: its `&Ctx` parameter's type, or, without
    // one, whatever the middleware stack hands on (or any context at all).
    let ctx_ty = match (&model.ctx, &model.layer) {
        (Some(ty), _) => quote!(#ty),
        (None, Some(layer)) => quote_spanned!(layer.span()=> <#layer as ::oxrpc::Layer>::Out),
        (None, None) => quote!(()),
    };
    let ctx_arg = model.ctx.as_ref().map(|_| quote!(&__ctx,));
    let call = quote!(#ident(#ctx_arg #input_arg).await);
    let result = if model.output.is_result {
        quote!(::oxrpc::__private::into_result(#call))
    } else {
        quote!(::core::result::Result::<_, ::oxrpc::Error>::Ok(#call))
    };
    // Subscriptions hand the runtime a stream of `Result`s; plain event streams are wrapped.
    let result = if model.kind == Kind::Subscription && !model.output.items_are_results {
        let ty = &model.output.ty;
        quote_spanned!(ty.span()=> #result.map(::oxrpc::__private::ok_stream))
    } else {
        result
    };
    let generics = if model.ctx.is_none() && model.layer.is_none() {
        quote!(<__Ctx: ::core::marker::Send + 'static>)
    } else {
        quote!()
    };
    let (router_ctx, with_layer) = match &model.layer {
        Some(layer) => (
            quote_spanned!(layer.span()=> <#layer as ::oxrpc::Layer>::In),
            quote_spanned!(layer.span()=> .with(<#layer as ::core::default::Default>::default())),
        ),
        None => (ctx_ty.clone(), quote!()),
    };
    let metas = model
        .meta
        .iter()
        .map(|m| quote_spanned!(m.span()=> .with_meta(#m)));
    let input_param = match &model.input {
        Some(_) => quote!(__input: #input_ty),
        None => quote!((): ()),
    };
    let describe = (!docs.is_empty()).then(|| quote!(.describe(#docs)));
    // A `Result<T, E>` function declares `E` when it is a `TypedError` (before the middleware
    // stack: the stack's own errors keep the root shape).
    let declare_errors = model.output.is_result.then(|| {
        let probe = match usize::from(model.ctx.is_some()) + usize::from(model.input.is_some()) {
            0 => quote!(error_type_of0),
            1 => quote!(error_type_of1),
            _ => quote!(error_type_of2),
        };
        quote! {
            #[allow(unused_imports)]
            use ::oxrpc::__private::{Typed as _, Untyped as _};
            let __p = (&::oxrpc::__private::#probe(&#ident)).declare(__p);
        }
    });
    let procedure_doc = format!("Builds the `{name}` procedure (generated by `#[procedure]`).");

    // With a middleware stack, the builder's own tokens carry the stack's span: if the type is
    // not a middleware, every obligation that fails points at it, and rustc reports it once.
    let span = model
        .layer
        .as_ref()
        .map_or_else(proc_macro2::Span::call_site, syn::spanned::Spanned::span);
    // Queries and mutations: the handler is written here, next to the function, so that the
    // code naming its future is compiled in this module (see `Procedure::__handled`).
    // Subscriptions go through the generic constructor.
    let (construct, handle) = if model.kind == Kind::Subscription {
        let construct = quote_spanned! {span=>
            ::oxrpc::Procedure::#constructor::<#type_args>(
                #name,
                |__ctx: #ctx_ty, #input_param| async move { #result },
            )
        };
        (construct, None)
    } else {
        let kind = match model.kind {
            Kind::Query => quote!(Query),
            _ => quote!(Mutation),
        };
        let output_ty = quote_spanned!(output_ty.span()=> #output_ty);
        // The types' bounds are checked once, on this constant; the handler goes through its
        // plain function pointers, so nothing below is generic code instantiated per type.
        let types = quote_spanned! {span=>
            #[doc(hidden)]
            const __TYPES: ::oxrpc::__private::Types<#input_ty, #output_ty> =
                ::oxrpc::__private::types::<#input_ty, #output_ty>();
        };
        let construct = quote_spanned! {span=>
            ::oxrpc::Procedure::__handled(
                ::oxrpc::ProcedureKind::#kind,
                #name,
                Self::__TYPES.input,
                Self::__TYPES.output,
                Self::__handle,
            )
        };
        let decode = model.input.as_ref().map(|_| {
            quote! {
                let __input = match (Self::__TYPES.decode)(__io, __call) {
                    ::core::result::Result::Ok(__input) => __input,
                    ::core::result::Result::Err(__e) => return ::oxrpc::__private::failed(__e),
                };
            }
        });
        let handle = quote_spanned! {span=>
            #types
            #[doc(hidden)]
            #[allow(clippy::let_unit_value)]
            fn __handle(
                __io: &::std::sync::Arc<::oxrpc::__private::Io>,
                __ctx: #ctx_ty,
                __call: &::oxrpc::Call,
            ) -> ::oxrpc::__private::BoxFuture<
                ::core::result::Result<::oxrpc::Reply, ::oxrpc::Error>,
            > {
                #decode
                let __encoder = ::oxrpc::__private::Encoder::new(__io, __call);
                ::std::boxed::Box::pin(async move {
                    (Self::__TYPES.encode)(&__encoder, #result)
                })
            }
        };
        (construct, Some(handle))
    };
    let body = quote_spanned! {span=>
        let __p = #construct #describe;
        #declare_errors
        __p #(#metas)* #with_layer
    };
    // Without a context of its own the procedure fits any router: it is built once, for `()`,
    // by a function that is not generic (compiled once, in this crate), and `procedure()`
    // only adapts it. Generic, the whole builder would be compiled again for every context
    // type and its code exported for other crates to compile.
    let builder = if model.ctx.is_none() && model.layer.is_none() {
        let built = quote!(__build);
        quote_spanned! {span=>
            #[doc(hidden)]
            #[track_caller]
            fn #built() -> ::oxrpc::Procedure<()> {
                #body
            }
            #[doc = #procedure_doc]
            #[track_caller]
            #vis fn procedure #generics () -> ::oxrpc::Procedure<__Ctx> {
                Self::#built().__any_context()
            }
        }
    } else {
        quote_spanned! {span=>
            #[doc = #procedure_doc]
            #[track_caller]
            #vis fn procedure #generics () -> ::oxrpc::Procedure<#router_ctx> {
                #body
            }
        }
    };
    quote! {
        #func

        #[doc(hidden)]
        #[allow(non_camel_case_types)]
        #vis struct #ident {}

        impl #ident {
            #builder
            #handle
        }
    }
}

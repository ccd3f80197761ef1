//! The annotated function: signature parsed strictly, body kept as raw tokens.

use proc_macro2::TokenStream;
use quote::ToTokens;
use syn::{
    Attribute, FnArg, Pat, ReturnType, Signature, Token, Type, Visibility, braced,
    parse::{Parse, ParseStream},
    token::Brace,
};

use crate::{attr::Kind, errors::Errors};

/// A function with its body as unparsed tokens, so a half-typed body still expands
/// (tracing-attributes' `MaybeItemFn`).
pub(crate) struct ItemFn {
    pub(crate) attrs: Vec<Attribute>,
    pub(crate) vis: Visibility,
    pub(crate) sig: Signature,
    pub(crate) body: Body,
}

pub(crate) enum Body {
    Block { brace: Brace, tokens: TokenStream },
    Missing(Token![;]),
}

impl Parse for ItemFn {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let attrs = input.call(Attribute::parse_outer)?;
        let vis = input.parse()?;
        let sig = input.parse()?;
        let body = if input.peek(Token![;]) {
            Body::Missing(input.parse()?)
        } else {
            let content;
            let brace = braced!(content in input);
            Body::Block {
                brace,
                tokens: content.parse()?,
            }
        };
        Ok(ItemFn {
            attrs,
            vis,
            sig,
            body,
        })
    }
}

impl ToTokens for ItemFn {
    fn to_tokens(&self, tokens: &mut TokenStream) {
        for attr in &self.attrs {
            attr.to_tokens(tokens);
        }
        self.vis.to_tokens(tokens);
        self.sig.to_tokens(tokens);
        match &self.body {
            Body::Block {
                brace,
                tokens: body,
            } => {
                brace.surround(tokens, |t| body.to_tokens(t));
            }
            Body::Missing(semi) => semi.to_tokens(tokens),
        }
    }
}

/// How a parameter can be named in a placeholder.
pub(crate) enum Param {
    /// `&self` (the only receiver allowed).
    SelfRef,
    /// `name: Type` (the ident as written, maybe raw: `r#type`).
    Named(syn::Ident),
    /// An identifier bound inside a pattern (`(a, b): (u8, u8)`): not usable.
    InPattern,
}

/// Checks the signature; returns the parameters by name.
pub(crate) fn check(kind: Kind, item: &ItemFn, errors: &mut Errors) -> Vec<(String, Param)> {
    let sig = &item.sig;
    let attr = kind.name();
    if sig.asyncness.is_none() {
        errors.push(
            sig.fn_token.span,
            format!(
                "#[{attr}] applies to `async fn`s only; write `async fn {}`",
                sig.ident
            ),
        );
    }
    if let Body::Missing(semi) = &item.body {
        errors.push(
            semi.span,
            format!(
                "#[{attr}] needs the function's body; put it on the implementation, not on a declaration without a body"
            ),
        );
    }
    let mut params = Vec::new();
    for input in &sig.inputs {
        match input {
            FnArg::Receiver(recv) => {
                let by_ref_shared = recv.reference.is_some() && recv.mutability.is_none();
                let typed_ref = recv.colon_token.is_some()
                    && matches!(&*recv.ty, Type::Reference(r) if r.mutability.is_none());
                if recv.mutability.is_some() && recv.reference.is_some()
                    || matches!(&*recv.ty, Type::Reference(r) if r.mutability.is_some())
                {
                    errors.push_spanned(
                        recv,
                        format!(
                            "#[{attr}] methods take `&self`, not `&mut self`: a cached method must not need exclusive access (keep mutable state behind a lock)"
                        ),
                    );
                } else if !(by_ref_shared || typed_ref) {
                    errors.push_spanned(
                        recv,
                        format!(
                            "#[{attr}] methods take `&self`, not `self` by value; write `&self`"
                        ),
                    );
                }
                params.push(("self".to_owned(), Param::SelfRef));
            }
            FnArg::Typed(pat) => match &*pat.pat {
                Pat::Ident(ident) if ident.subpat.is_none() => {
                    let name = syn::ext::IdentExt::unraw(&ident.ident).to_string();
                    params.push((name, Param::Named(ident.ident.clone())));
                }
                other => collect_pattern_idents(other, &mut params),
            },
        }
    }
    if kind != Kind::Invalidates {
        check_return(kind, &sig.output, sig, errors);
    }
    params
}

fn collect_pattern_idents(pat: &Pat, out: &mut Vec<(String, Param)>) {
    struct Visit<'a>(&'a mut Vec<(String, Param)>);
    impl<'ast> syn::visit::Visit<'ast> for Visit<'_> {
        fn visit_pat_ident(&mut self, i: &'ast syn::PatIdent) {
            self.0.push((
                syn::ext::IdentExt::unraw(&i.ident).to_string(),
                Param::InPattern,
            ));
            syn::visit::visit_pat_ident(self, i);
        }
    }
    syn::visit::Visit::visit_pat(&mut Visit(out), pat);
}

fn check_return(kind: Kind, output: &ReturnType, sig: &Signature, errors: &mut Errors) {
    let ty = match output {
        ReturnType::Default => {
            let message = match kind {
                Kind::CachePut => format!(
                    "#[cache_put] stores the return value, and `{}` returns nothing; return the value written, e.g. `-> Result<User, DbError>`",
                    sig.ident
                ),
                _ => format!(
                    "#[cache_aside] caches the return value, and `{}` returns nothing; return the value to cache, e.g. `-> Option<User>`",
                    sig.ident
                ),
            };
            errors.push(sig.paren_token.span.close(), message);
            return;
        }
        ReturnType::Type(_, ty) => ty,
    };
    let problem = match &**ty {
        Type::Tuple(t) if t.elems.is_empty() => Some("`()` is not worth caching; return the value to cache, e.g. `-> Option<User>`".to_owned()),
        Type::ImplTrait(_) => Some("`impl Trait` cannot be cached; return a concrete type that implements `Serialize` and `DeserializeOwned`".to_owned()),
        Type::TraitObject(_) => Some("a trait object cannot be cached; return a concrete type that implements `Serialize` and `DeserializeOwned`".to_owned()),
        Type::Never(_) => Some("`!` cannot be cached; return the value to cache".to_owned()),
        Type::Ptr(_) | Type::BareFn(_) => Some("pointers cannot be cached; return an owned value that implements `Serialize` and `DeserializeOwned`".to_owned()),
        Type::Infer(_) => Some("write out the return type".to_owned()),
        _ => None,
    };
    if let Some(problem) = problem {
        errors.push_spanned(ty, format!("cannot cache this return type: {problem}"));
        return;
    }
    // References anywhere in the type cannot come back out of the cache.
    struct Refs<'a>(&'a mut Errors);
    impl<'ast> syn::visit::Visit<'ast> for Refs<'_> {
        fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
            self.0.push_spanned(
                r,
                "cannot cache this return type: a cached value is decoded into a new owned value, so it cannot hold references; return an owned type (`String` for `&str`, `Vec<T>` for `&[T]`)",
            );
        }
    }
    syn::visit::Visit::visit_type(&mut Refs(errors), ty);
}

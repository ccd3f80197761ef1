//! Code generation: one short call into `cached_runtime::__private`.

use proc_macro2::{Literal, Span, TokenStream};
use quote::{ToTokens, format_ident, quote, quote_spanned};
use syn::{Ident, LitStr, Member, Path, ReturnType, Type, parse_quote, spanned::Spanned};

use crate::{
    attr::{self, Kind},
    detach,
    errors::Errors,
    item::{self, Body, ItemFn, Param},
    template::{self, Of, Piece},
};

/// Expands one attribute. On any error the user's function comes back unchanged beside the
/// errors, so the editor keeps working and no follow-on errors appear.
pub(crate) fn expand(kind: Kind, args: TokenStream, input: TokenStream) -> TokenStream {
    let item: ItemFn = match syn::parse2(input.clone()) {
        Ok(item) => item,
        Err(e) => {
            let mut out = input;
            out.extend(e.into_compile_error());
            return out;
        }
    };
    let mut errors = Errors::default();
    let args = attr::parse(kind, args, &mut errors);
    let params = item::check(kind, &item, &mut errors);
    // Kept apart: with only these, the function still gets the checks that its `self` and
    // other arguments can be cloned into the task, so that a build reports both kinds.
    let mut borrows = Errors::default();
    if let Some(option) = detach::reason(&args) {
        detach::check(&item.sig, option, &mut borrows);
    }
    let mut template = |lit: &LitStr, of| {
        let pieces = template::parse(lit, of, &mut errors);
        segments(lit, &pieces, &item, &params, &mut errors)
    };
    let templates: Vec<TokenStream> = args.keys.iter().map(|t| template(t, Of::Key)).collect();
    let tags: Vec<TokenStream> = args.tags.iter().map(|t| template(t, Of::Tag)).collect();
    if !errors.is_empty() || !borrows.is_empty() {
        // The function as written, so that nothing else fails; parameters used only in the
        // key would look unused, which is not the problem to report.
        let mut out = quote!(#[allow(unused_variables)]);
        if errors.is_empty() {
            out.extend(with_owned_checks(&item, &args.krate_path()));
        } else {
            out.extend(item.to_token_stream());
        }
        errors.add_all(borrows);
        out.extend(errors.into_compile_errors());
        return out;
    }
    generate(kind, &item, &args, &templates, &tags)
}

impl attr::Args {
    fn krate_path(&self) -> Path {
        self.krate
            .clone()
            .unwrap_or_else(|| parse_quote!(::cached_runtime))
    }
}

/// `&["user:", ""], &[&id]` for one template: its text around the placeholders, and the
/// placeholders' values.
fn segments(
    lit: &LitStr,
    pieces: &[Piece],
    item: &ItemFn,
    params: &[(String, Param)],
    errors: &mut Errors,
) -> TokenStream {
    let span = lit.span();
    let mut lits = vec![String::new()];
    let mut args = Vec::new();
    for piece in pieces {
        match piece {
            Piece::Lit(text) => lits.last_mut().expect("never empty").push_str(text),
            Piece::Place(path) => {
                if let Some(arg) = placeholder(path, span, item, params, errors) {
                    args.push(arg);
                }
                lits.push(String::new());
            }
        }
    }
    quote!(&[#(#lits),*], &[#(#args),*])
}

/// The value of one placeholder: `&id`, `&self.tenant`.
fn placeholder(
    path: &[String],
    span: Span,
    item: &ItemFn,
    params: &[(String, Param)],
    errors: &mut Errors,
) -> Option<TokenStream> {
    let name = &path[0];
    let shown = path.join(".");
    let root = match params.iter().find(|(n, _)| n == name) {
        Some((_, Param::SelfRef)) => quote_spanned!(span=> self),
        Some((_, Param::Named(ident))) => {
            let mut ident = ident.clone();
            ident.set_span(span);
            ident.into_token_stream()
        }
        Some((_, Param::InPattern)) => {
            errors.push(
                        span,
                        format!(
                            "placeholder `<{shown}>`: `{name}` is bound inside a pattern; placeholders name whole parameters, so bind the parameter to a name (e.g. `point: Point`) and write `<point.field>`"
                        ),
                    );
            return None;
        }
        None if name == "self" => {
            errors.push(
                        span,
                        format!(
                            "placeholder `<{shown}>`: `{}` has no `self`; `<self.…>` placeholders work in `&self` methods",
                            item.sig.ident
                        ),
                    );
            return None;
        }
        None => {
            let names: Vec<&str> = params
                .iter()
                .filter(|(_, p)| !matches!(p, Param::InPattern))
                .map(|(n, _)| n.as_str())
                .collect();
            let known = if names.is_empty() {
                format!("`{}` has no parameters", item.sig.ident)
            } else {
                format!("its parameters are: {}", names.join(", "))
            };
            errors.push(
                span,
                format!(
                    "placeholder `<{shown}>` names no parameter of `{}`; {known}",
                    item.sig.ident
                ),
            );
            return None;
        }
    };
    let fields = path[1..].iter().map(|f| -> Member {
        match f.parse::<u32>() {
            Ok(index) => Member::Unnamed(syn::Index { index, span }),
            Err(_) => Member::Named(syn::parse_str::<Ident>(f).map_or_else(
                |_| Ident::new_raw(f, span),
                |mut ident| {
                    ident.set_span(span);
                    ident
                },
            )),
        }
    });
    // Spanned at the key: a value type without `KeyPart` is reported there.
    Some(quote_spanned!(span=> &#root #(.#fields)*))
}

/// The receiver's span and the type it refers to (`Self` for `&self`, `X` for `self: &X`),
/// named in the clone so that an error is about that type, not about borrowing `self`.
fn receiver(sig: &syn::Signature) -> Option<(Span, Type)> {
    sig.receiver().map(|r| {
        let referent: Type = match &*r.ty {
            Type::Reference(reference) => (*reference.elem).clone(),
            _ => parse_quote!(Self),
        };
        (r.self_token.span, referent)
    })
}

/// The function as written, its body preceded by the clones a background task would take of
/// `self` and of each argument that does not borrow (those that do are reported already), so
/// that a missing `Clone` is reported in the same build.
fn with_owned_checks(item: &ItemFn, krate: &Path) -> TokenStream {
    let Body::Block {
        brace,
        tokens: body,
    } = &item.body
    else {
        return item.to_token_stream();
    };
    let mut checks = TokenStream::new();
    if let Some((span, referent)) = receiver(&item.sig) {
        checks.extend(quote_spanned!(span=> let _ = #krate::__private::owned::<#referent>(self);));
    }
    for name in detach::owned_bindings(&item.sig) {
        checks.extend(quote_spanned!(name.span()=> let _ = #krate::__private::owned(&#name);));
    }
    let ItemFn {
        attrs, vis, sig, ..
    } = item;
    let mut block = TokenStream::new();
    brace.surround(&mut block, |t| {
        checks.to_tokens(t);
        body.to_tokens(t);
    });
    quote!(#(#attrs)* #vis #sig #block)
}

/// `Detached(|| { let id = owned(&id); async move { ... } })`: a maker of the body as an
/// owned future, holding clones of `self` (reached through `__self`) and of the arguments.
fn detached(
    krate: &Path,
    sig: &syn::Signature,
    brace: &syn::token::Brace,
    body: &TokenStream,
    ret: &Type,
) -> TokenStream {
    let ret_value = Ident::new("__ret", Span::mixed_site());
    let this = Ident::new("__this", Span::mixed_site());
    let receiver = receiver(sig);
    let mut block = TokenStream::new();
    let body = match receiver {
        Some(_) => detach::rename_self(body.clone(), "__self"),
        None => body.clone(),
    };
    brace.surround(&mut block, |t| body.to_tokens(t));
    let clones = detach::bindings(sig).into_iter().map(|name| {
        let mutability = detach::is_mut(sig, &name).then(|| quote!(mut));
        quote_spanned!(name.span()=> let #mutability #name = #krate::__private::owned(&#name);)
    });
    let (this_clone, this_ref) = match receiver {
        Some((span, referent)) => {
            let renamed = Ident::new("__self", span);
            (
                quote_spanned!(span=> let #this = #krate::__private::owned::<#referent>(self);),
                quote!(let #renamed = &#this;),
            )
        }
        None => (TokenStream::new(), TokenStream::new()),
    };
    quote! {
        #krate::__private::Detached(|| {
            #this_clone
            #(#clones)*
            async move {
                #this_ref
                let #ret_value: #ret = #block;
                #ret_value
            }
        })
    }
}

fn generate(
    kind: Kind,
    item: &ItemFn,
    args: &attr::Args,
    templates: &[TokenStream],
    tags: &[TokenStream],
) -> TokenStream {
    let krate = args.krate_path();
    let ItemFn {
        attrs, vis, sig, ..
    } = item;
    let Body::Block {
        brace,
        tokens: body,
    } = &item.body
    else {
        unreachable!("a missing body is reported as an error");
    };
    let mut block = TokenStream::new();
    brace.surround(&mut block, |t| body.to_tokens(t));

    // Generated locals are hygienic: the body cannot see them, and they cannot clash with
    // the user's names (`cache`, `key`, ...).
    let cache = Ident::new("__cache", Span::mixed_site());
    let site = format_ident!("__SITE", span = Span::mixed_site());
    let policy_name = format_ident!("__POLICY", span = Span::mixed_site());
    let ret_value = Ident::new("__ret", Span::mixed_site());
    let tags_ident = Ident::new("__tags", Span::mixed_site());
    let name = format!("::{}", sig.ident);
    let (ttl, null_ttl) = (
        Literal::u64_unsuffixed(args.ttl.map_or(0, |t| t.value)),
        Literal::u64_unsuffixed(args.null_ttl.map_or(0, |t| t.value)),
    );
    let mut policy = TokenStream::new();
    if !args.lock {
        policy.extend(quote!(.without_lock()));
    }
    if let Some(stale) = args.stale {
        let secs = Literal::u64_unsuffixed(stale.value);
        policy.extend(quote!(.stale(#secs)));
    }
    if let Some(fail_safe) = args.fail_safe {
        let secs = Literal::u64_unsuffixed(fail_safe.value);
        policy.extend(quote!(.fail_safe(#secs)));
    }
    if let Some(timeout) = args.timeout {
        let ms = Literal::u64_unsuffixed(timeout.value);
        policy.extend(quote!(.timeout(#ms)));
    }
    if let Some(beta) = &args.early_refresh {
        policy.extend(quote!(.early_refresh(#beta)));
    }
    if args.sliding {
        policy.extend(quote!(.sliding()));
    }
    // Spanned at the expression: something that is not a cache is reported there.
    let cache_expr = match &args.cache {
        Some(expr) => quote_spanned!(expr.span()=> &(#expr)),
        None => quote!(&#krate::__private::Global),
    };
    let (ret, ret_span): (Type, Span) = match &sig.output {
        ReturnType::Type(_, ty) => ((**ty).clone(), ty.span()),
        ReturnType::Default => (parse_quote!(()), sig.paren_token.span.close()),
    };
    // The body typed as the declared return type: a mismatch is reported in the body.
    let async_body = quote!({ let #ret_value: #ret = #block; #ret_value });
    let mut sig = sig.clone();
    let probe = quote_spanned!(ret_span=> #krate::__private::probe::<#ret>().shape());

    // The function's static call site (name, TTLs, policy, counters), in a block of its own so
    // that it can shadow nothing of the user's.
    let site_ref = quote! {{
        static #site: #krate::__private::Site =
            #krate::__private::Site::new(::core::concat!(::core::module_path!(), #name));
        static #policy_name: #krate::__private::Policy =
            #krate::__private::Policy::new(&#site, #ttl, #null_ttl)#policy;
        &#policy_name
    }};
    let call = match kind {
        Kind::CacheAside => {
            let key = Ident::new("__key", Span::mixed_site());
            let template = &templates[0];
            let sharing = quote_spanned!(ret_span=> #krate::__private::probe::<#ret>().sharing());
            let shape =
                quote_spanned!(ret_span=> #krate::__private::ops::<#ret, _>(#probe, #sharing));
            let body = match detach::reason(args) {
                None => quote!(async #async_body),
                Some(_) => {
                    let body = detached(&krate, &sig, brace, body, &ret);
                    sig = detach::without_mut(&sig);
                    body
                }
            };
            if tags.is_empty() {
                quote! {
                    let #key = #krate::__private::key(#cache, #template);
                    #krate::__private::cache_aside(#cache, #key, #site_ref, #shape, #body).await
                }
            } else {
                quote! {
                    let #key = #krate::__private::key(#cache, #template);
                    let #tags_ident = #krate::__private::tags(#cache, &[#((#tags)),*]);
                    #krate::__private::cache_aside_tagged(#cache, #key, #tags_ident, #site_ref, #shape, #body).await
                }
            }
        }
        Kind::CachePut => {
            let key = Ident::new("__key", Span::mixed_site());
            let template = &templates[0];
            let ops = quote_spanned!(ret_span=> #krate::__private::put_ops::<#ret, _>(#probe));
            if tags.is_empty() {
                quote! {
                    let #key = #krate::__private::key(#cache, #template);
                    #krate::__private::cache_put(#cache, #key, #site_ref, #ops, async #async_body).await
                }
            } else {
                quote! {
                    let #key = #krate::__private::key(#cache, #template);
                    let #tags_ident = #krate::__private::tags(#cache, &[#((#tags)),*]);
                    #krate::__private::cache_put_tagged(#cache, #key, #tags_ident, #site_ref, #ops, async #async_body).await
                }
            }
        }
        Kind::Invalidates => {
            let keys = Ident::new("__keys", Span::mixed_site());
            if tags.is_empty() {
                quote! {
                    let #keys = #krate::__private::keys(#cache, &[#((#templates)),*]);
                    #krate::__private::invalidate(#cache, #keys, #site_ref, #probe, async #async_body).await
                }
            } else {
                quote! {
                    let #keys = #krate::__private::keys(#cache, &[#((#templates)),*]);
                    let #tags_ident = #krate::__private::tags(#cache, &[#((#tags)),*]);
                    #krate::__private::invalidate_tagged(#cache, #keys, #tags_ident, #site_ref, #probe, async #async_body).await
                }
            }
        }
    };
    quote! {
        #(#attrs)*
        #vis #sig {
            let #cache: #krate::__private::CacheRef<'_> = #cache_expr;
            #call
        }
    }
}

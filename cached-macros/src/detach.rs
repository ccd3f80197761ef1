//! Bodies that run in the background (`stale`, `early_refresh`, `timeout`): the body becomes an
//! owned future that holds clones of `self` and of the arguments, so that a refresh needs no
//! caller to wait for it and a load that outlives `timeout` can finish.

use proc_macro2::{Group, Ident, Spacing, TokenStream, TokenTree};
use syn::{FnArg, Signature, Type, visit::Visit};

use crate::{attr::Args, errors::Errors};

/// The option that makes the body run in the background, if any.
pub(crate) fn reason(args: &Args) -> Option<&'static str> {
    if args.stale.is_some() {
        Some("stale")
    } else if args.early_refresh.is_some() {
        Some("early_refresh")
    } else if args.timeout.is_some() {
        Some("timeout")
    } else {
        None
    }
}

/// Arguments must be owned: a borrowed one cannot go into a task that outlives the call.
pub(crate) fn check(sig: &Signature, option: &str, errors: &mut Errors) {
    struct Borrows<'a> {
        option: &'a str,
        errors: &'a mut Errors,
    }
    impl<'ast> Visit<'ast> for Borrows<'_> {
        fn visit_type_reference(&mut self, r: &'ast syn::TypeReference) {
            let owned = match &*r.elem {
                Type::Path(p) if p.path.is_ident("str") => "`String` instead of `&str`".to_owned(),
                Type::Slice(_) => "`Vec<T>` or `Arc<[T]>` instead of `&[T]`".to_owned(),
                _ => "`T` or `Arc<T>` instead of `&T`".to_owned(),
            };
            self.errors.push_spanned(
                r,
                format!(
                    "with `{}`, the body runs in a background task that outlives the call, so it cannot borrow its arguments; take {owned}",
                    self.option
                ),
            );
        }
        fn visit_lifetime(&mut self, l: &'ast syn::Lifetime) {
            self.errors.push(
                l.span(),
                format!(
                    "with `{}`, the body runs in a background task that outlives the call, so its arguments must own their data (no lifetime `{l}`)",
                    self.option
                ),
            );
        }
    }
    for input in &sig.inputs {
        if let FnArg::Typed(pat) = input {
            Borrows {
                option,
                errors: &mut *errors,
            }
            .visit_type(&pat.ty);
        }
    }
}

/// Every name the parameters bind (other than `self`), to be cloned into the body.
pub(crate) fn bindings(sig: &Signature) -> Vec<Ident> {
    typed(sig).flat_map(|pat| names(&pat.pat)).collect()
}

fn typed(sig: &Signature) -> impl Iterator<Item = &syn::PatType> {
    sig.inputs.iter().filter_map(|input| match input {
        FnArg::Typed(pat) => Some(pat),
        FnArg::Receiver(_) => None,
    })
}

/// The names a pattern binds.
fn names(pat: &syn::Pat) -> Vec<Ident> {
    struct Names(Vec<Ident>);
    impl<'ast> Visit<'ast> for Names {
        fn visit_pat_ident(&mut self, i: &'ast syn::PatIdent) {
            self.0.push(i.ident.clone());
            syn::visit::visit_pat_ident(self, i);
        }
    }
    let mut names = Names(Vec::new());
    names.visit_pat(pat);
    names.0
}

/// The names bound by the parameters whose types neither borrow nor name a lifetime: those
/// that could be cloned into the task as they are.
pub(crate) fn owned_bindings(sig: &Signature) -> Vec<Ident> {
    struct Borrows(bool);
    impl<'ast> Visit<'ast> for Borrows {
        fn visit_type_reference(&mut self, _: &'ast syn::TypeReference) {
            self.0 = true;
        }
        fn visit_lifetime(&mut self, _: &'ast syn::Lifetime) {
            self.0 = true;
        }
    }
    typed(sig)
        .filter(|pat| {
            let mut borrows = Borrows(false);
            borrows.visit_type(&pat.ty);
            !borrows.0
        })
        .flat_map(|pat| names(&pat.pat))
        .collect()
}

/// The signature without `mut` on its bindings: the body, which may mutate them, gets clones,
/// and a `mut` left on the parameters would be unused. (`mut` on a parameter is not part of a
/// function's type.)
pub(crate) fn without_mut(sig: &Signature) -> Signature {
    struct Strip;
    impl syn::visit_mut::VisitMut for Strip {
        fn visit_pat_ident_mut(&mut self, i: &mut syn::PatIdent) {
            if i.by_ref.is_none() {
                i.mutability = None;
            }
            syn::visit_mut::visit_pat_ident_mut(self, i);
        }
    }
    let mut sig = sig.clone();
    for input in &mut sig.inputs {
        if let FnArg::Typed(pat) = input {
            syn::visit_mut::VisitMut::visit_pat_mut(&mut Strip, &mut pat.pat);
        }
    }
    sig
}

/// The parameters' bindings that were `mut`, to be declared `mut` again on the clones.
pub(crate) fn is_mut(sig: &Signature, name: &Ident) -> bool {
    struct Find<'a>(&'a Ident, bool);
    impl<'ast> Visit<'ast> for Find<'_> {
        fn visit_pat_ident(&mut self, i: &'ast syn::PatIdent) {
            if i.ident == *self.0 && i.mutability.is_some() {
                self.1 = true;
            }
            syn::visit::visit_pat_ident(self, i);
        }
    }
    let mut find = Find(name, false);
    for input in &sig.inputs {
        if let FnArg::Typed(pat) = input {
            find.visit_pat(&pat.pat);
        }
    }
    find.1
}

/// The body with the value `self` renamed to `renamed` (a reference to the owned clone),
/// keeping each token's span; `self::path` is a module path and stays.
/// (tracing-attributes does the same for `async-trait` bodies.)
pub(crate) fn rename_self(tokens: TokenStream, renamed: &str) -> TokenStream {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = TokenStream::new();
    for (i, tree) in tokens.iter().enumerate() {
        let tree = match tree {
            TokenTree::Ident(ident) if ident == "self" && !is_path_sep(&tokens[i + 1..]) => {
                TokenTree::Ident(Ident::new(renamed, ident.span()))
            }
            TokenTree::Group(group) => {
                let mut new = Group::new(group.delimiter(), rename_self(group.stream(), renamed));
                new.set_span(group.span());
                TokenTree::Group(new)
            }
            other => other.clone(),
        };
        out.extend([tree]);
    }
    out
}

fn is_path_sep(rest: &[TokenTree]) -> bool {
    matches!(rest, [TokenTree::Punct(a), TokenTree::Punct(b), ..]
        if a.as_char() == ':' && a.spacing() == Spacing::Joint && b.as_char() == ':')
}

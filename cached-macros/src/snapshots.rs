//! Expansion snapshots: every `tests/expand/*.rs` of the workspace, with our attributes
//! expanded and pretty-printed by `prettyplease`, must equal the `*.expanded.rs` beside it.
//! `SNAPSHOTS=overwrite cargo test -p cached-macros` rewrites them; review with `git diff`.
//! (The same idea as `macrotest`, without needing `cargo expand` installed.)

use std::{fs, path::Path};

use quote::ToTokens;
use syn::{ImplItem, Item};

use crate::{attr::Kind, expand::expand};

fn kind_of(attr: &syn::Attribute) -> Option<Kind> {
    let last = attr.path().segments.last()?.ident.to_string();
    match last.as_str() {
        "cache_aside" => Some(Kind::CacheAside),
        "invalidates" => Some(Kind::Invalidates),
        "cache_put" => Some(Kind::CachePut),
        _ => None,
    }
}

/// Expands our attributes on free functions and methods, in place.
fn expand_file(file: &mut syn::File) {
    fn take(attrs: &mut Vec<syn::Attribute>) -> Option<(Kind, proc_macro2::TokenStream)> {
        let at = attrs.iter().position(|a| kind_of(a).is_some())?;
        let attr = attrs.remove(at);
        let args = match &attr.meta {
            syn::Meta::List(list) => list.tokens.clone(),
            _ => proc_macro2::TokenStream::new(),
        };
        Some((kind_of(&attr).unwrap(), args))
    }
    for item in &mut file.items {
        match item {
            Item::Fn(f) => {
                if let Some((kind, args)) = take(&mut f.attrs) {
                    let out = expand(kind, args, f.to_token_stream());
                    *f = syn::parse2(out).expect("expansion parses as a function");
                }
            }
            Item::Impl(imp) => {
                for it in &mut imp.items {
                    if let ImplItem::Fn(f) = it
                        && let Some((kind, args)) = take(&mut f.attrs)
                    {
                        let out = expand(kind, args, f.to_token_stream());
                        *f = syn::parse2(out).expect("expansion parses as a method");
                    }
                }
            }
            _ => {}
        }
    }
}

#[test]
fn expansions_match_snapshots() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/expand");
    let overwrite = std::env::var_os("SNAPSHOTS").is_some_and(|v| v == "overwrite");
    let mut inputs: Vec<_> = fs::read_dir(&dir)
        .expect("tests/expand exists")
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.extension().is_some_and(|e| e == "rs")
                && !p.to_string_lossy().ends_with(".expanded.rs")
        })
        .collect();
    inputs.sort();
    assert!(!inputs.is_empty());
    let mut mismatches = Vec::new();
    for input in inputs {
        let mut file = syn::parse_file(&fs::read_to_string(&input).unwrap()).unwrap();
        expand_file(&mut file);
        let pretty = prettyplease::unparse(&file);
        let snapshot = input.with_extension("expanded.rs");
        if overwrite || !snapshot.exists() {
            fs::write(&snapshot, &pretty).unwrap();
        } else if fs::read_to_string(&snapshot).unwrap() != pretty {
            mismatches.push(format!(
                "{} differs from its expansion:\n{pretty}",
                snapshot.display()
            ));
        }
    }
    assert!(
        mismatches.is_empty(),
        "{}\n(run `SNAPSHOTS=overwrite cargo test -p cached-macros` and review the diff)",
        mismatches.join("\n")
    );
}

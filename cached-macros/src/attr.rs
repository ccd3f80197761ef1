//! Parsing the attribute's arguments into a typed model, collecting every error.

use proc_macro2::{Span, TokenStream};
use syn::{
    Expr, ExprLit, Ident, Lit, LitStr, Path, Token,
    ext::IdentExt,
    parse::{Parse, ParseStream},
    spanned::Spanned,
};

use crate::errors::Errors;

/// Which macro is being parsed.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(crate) enum Kind {
    CacheAside,
    Invalidates,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::CacheAside => "cache_aside",
            Kind::Invalidates => "invalidates",
        }
    }

    fn options(self) -> &'static [&'static str] {
        match self {
            Kind::CacheAside => &[
                "key",
                "ttl",
                "null_ttl",
                "lock",
                "stale",
                "early_refresh",
                "fail_safe",
                "timeout",
                "cache",
                "crate",
            ],
            Kind::Invalidates => &["key", "keys", "cache", "crate"],
        }
    }

    fn example(self) -> &'static str {
        match self {
            Kind::CacheAside => "#[cache_aside(key = \"user:<id>\", ttl = 600)]",
            Kind::Invalidates => "#[invalidates(key = \"user:<id>\")]",
        }
    }
}

/// One `name = value` argument.
struct Arg {
    name: Ident,
    value: Expr,
}

/// The argument list. A malformed argument is an error of its own; the others still count,
/// so that one typo does not also report every other option as missing.
struct ArgList(Vec<Result<Arg, syn::Error>>);

impl Parse for ArgList {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Vec::new();
        while !input.is_empty() {
            let name = Ident::parse_any(input)?;
            if input.peek(Token![=]) {
                input.parse::<Token![=]>()?;
                args.push(Ok(Arg {
                    name,
                    value: input.parse()?,
                }));
            } else {
                let hint = match name.to_string().as_str() {
                    "lock" => "`lock = false` (stampede protection is on by default)".to_owned(),
                    n => format!("`{n} = <value>`, e.g. `ttl = 600` or `key = \"user:<id>\"`"),
                };
                args.push(Err(syn::Error::new(
                    name.span(),
                    format!("expected {hint}"),
                )));
                // Skip to the next argument.
                while !input.is_empty() && !input.peek(Token![,]) {
                    input.parse::<proc_macro2::TokenTree>()?;
                }
            }
            if input.is_empty() {
                break;
            }
            input.parse::<Token![,]>()?;
        }
        Ok(ArgList(args))
    }
}

/// A value set at most once, remembering where (serde_derive's `Attr<T>`).
struct Once<T> {
    value: Option<(Ident, T)>,
}

impl<T> Once<T> {
    fn new() -> Self {
        Once { value: None }
    }

    fn set(&mut self, name: &Ident, value: T, errors: &mut Errors) {
        if self.value.is_some() {
            errors.push(
                name.span(),
                format!("duplicate option `{name}`; give it once"),
            );
        } else {
            self.value = Some((name.clone(), value));
        }
    }

    fn get(self) -> Option<T> {
        self.value.map(|(_, v)| v)
    }
}

/// A duration option, with the span of its value.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Secs {
    pub(crate) secs: u64,
    pub(crate) span: Span,
}

/// The parsed arguments of either attribute.
pub(crate) struct Args {
    pub(crate) keys: Vec<LitStr>,
    pub(crate) ttl: Option<Secs>,
    pub(crate) null_ttl: Option<Secs>,
    pub(crate) cache: Option<Expr>,
    pub(crate) krate: Option<Path>,
    /// `lock = false` turns stampede protection off.
    pub(crate) lock: bool,
    pub(crate) stale: Option<Secs>,
    pub(crate) fail_safe: Option<Secs>,
    /// XFetch β, as written.
    pub(crate) early_refresh: Option<syn::LitFloat>,
    /// Milliseconds (the `secs` field holds them).
    pub(crate) timeout: Option<Secs>,
}

/// Parses `args`; every problem goes into `errors` and the rest is still returned.
pub(crate) fn parse(kind: Kind, args: TokenStream, errors: &mut Errors) -> Args {
    let mut key = Once::new();
    let mut keys = Once::new();
    let mut ttl = Once::new();
    let mut null_ttl = Once::new();
    let mut cache = Once::new();
    let mut krate = Once::new();
    let mut lock = Once::new();
    let mut stale = Once::new();
    let mut fail_safe = Once::new();
    let mut early_refresh = Once::new();
    let mut timeout = Once::new();

    let list = match syn::parse2::<ArgList>(args) {
        Ok(ArgList(list)) => list,
        Err(e) => {
            errors.add(e);
            Vec::new()
        }
    };
    // Options written at all, valid or not: a bad value is reported once, at the value, not
    // again as "missing".
    let mut seen = Vec::new();
    let mut repeated_keys = Vec::new();
    for arg in list {
        let Arg { name, value } = match arg {
            Ok(arg) => arg,
            Err(e) => {
                errors.add(e);
                continue;
            }
        };
        let n = name.to_string();
        seen.push(n.clone());
        if !kind.options().contains(&n.as_str()) {
            errors.push(
                name.span(),
                format!(
                    "unknown option `{n}` for #[{}]; valid options are: {}",
                    kind.name(),
                    kind.options().join(", ")
                ),
            );
            continue;
        }
        match n.as_str() {
            "key" => {
                if let Some(lit) = string(&value, "key", "key = \"user:<id>\"", errors) {
                    // `#[invalidates]` may list several keys.
                    if kind == Kind::Invalidates && key.value.is_some() {
                        repeated_keys.push(lit);
                    } else {
                        key.set(&name, lit, errors);
                    }
                }
            }
            "keys" => {
                if let Some(list) = string_list(&value, errors) {
                    keys.set(&name, list, errors);
                }
            }
            "ttl" => {
                if let Some(s) = seconds(&value, "ttl", errors) {
                    ttl.set(&name, s, errors);
                }
            }
            "null_ttl" => {
                if let Some(s) = seconds(&value, "null_ttl", errors) {
                    null_ttl.set(&name, s, errors);
                }
            }
            "stale" => {
                if let Some(s) = seconds(&value, "stale", errors) {
                    stale.set(&name, s, errors);
                }
            }
            "fail_safe" => {
                if let Some(s) = seconds(&value, "fail_safe", errors) {
                    fail_safe.set(&name, s, errors);
                }
            }
            "timeout" => {
                if let Some(ms) = positive_int(&value, "timeout", "milliseconds", errors) {
                    timeout.set(&name, ms, errors);
                }
            }
            "early_refresh" => {
                if let Some(beta) = beta(&value, errors) {
                    early_refresh.set(&name, beta, errors);
                }
            }
            "cache" => cache.set(&name, value, errors),
            "lock" => match &value {
                Expr::Lit(ExprLit {
                    lit: Lit::Bool(b), ..
                }) => lock.set(&name, b.value, errors),
                other => errors.push(
                    other.span(),
                    "`lock` takes `true` (the default: one load per key at a time) or `false`",
                ),
            },
            "crate" => {
                if let Some(lit) = string(&value, "crate", "crate = \"cached_runtime\"", errors) {
                    match lit.parse::<Path>() {
                        Ok(path) => krate.set(&name, path, errors),
                        Err(_) => errors.push(
                            lit.span(),
                            "`crate` takes the path of the runtime crate, e.g. `crate = \"cached_runtime\"`",
                        ),
                    }
                }
            }
            _ => unreachable!("checked against kind.options()"),
        }
    }

    let mut all_keys: Vec<LitStr> = key.get().into_iter().collect();
    all_keys.extend(repeated_keys);
    all_keys.extend(keys.get().into_iter().flatten());
    let given = |n: &str| seen.iter().any(|s| s == n);
    if all_keys.is_empty() && !given("key") && !given("keys") {
        errors.push(
            Span::call_site(),
            format!(
                "#[{}] needs a key: add `key = \"...\"` with `<param>` placeholders, e.g. {}",
                kind.name(),
                kind.example()
            ),
        );
    }
    let ttl = ttl.get();
    let null_ttl = null_ttl.get();
    if kind == Kind::CacheAside {
        match (ttl, null_ttl) {
            (None, _) if given("ttl") => {}
            (None, _) => errors.push(
                Span::call_site(),
                "#[cache_aside] needs a TTL: add `ttl = <seconds>`, e.g. `ttl = 600`; every cached entry must expire",
            ),
            (Some(ttl), Some(null)) if null.secs > ttl.secs => errors.push(
                null.span,
                format!(
                    "`null_ttl` ({}) is longer than `ttl` ({}); a cached \"not found\" should expire no later than a value: use at most `null_ttl = {}`",
                    null.secs, ttl.secs, ttl.secs
                ),
            ),
            _ => {}
        }
    }
    let (timeout, fail_safe, early_refresh) = (timeout.get(), fail_safe.get(), early_refresh.get());
    if let Some(t) = timeout
        && fail_safe.is_none()
        && early_refresh.is_none()
    {
        errors.push(
            t.span,
            "`timeout` bounds a load only when a cached value can stand in for it: add `fail_safe = <secs>` (or `early_refresh`)",
        );
    }
    Args {
        keys: all_keys,
        ttl,
        null_ttl,
        cache: cache.get(),
        krate: krate.get(),
        lock: lock.get().unwrap_or(true),
        stale: stale.get(),
        fail_safe,
        early_refresh,
        timeout,
    }
}

fn string(value: &Expr, name: &str, example: &str, errors: &mut Errors) -> Option<LitStr> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(s.clone()),
        other => {
            errors.push(
                other.span(),
                format!("`{name}` takes a string literal, e.g. `{example}`"),
            );
            None
        }
    }
}

fn string_list(value: &Expr, errors: &mut Errors) -> Option<Vec<LitStr>> {
    let Expr::Array(array) = value else {
        errors.push(
            value.span(),
            "`keys` takes a list of string literals, e.g. `keys = [\"user:<id>\", \"users:all\"]`",
        );
        return None;
    };
    if array.elems.is_empty() {
        errors.push(
            array.span(),
            "`keys` is empty; list at least one key template",
        );
    }
    let mut out = Vec::new();
    for elem in &array.elems {
        out.extend(string(elem, "keys", "keys = [\"user:<id>\"]", errors));
    }
    Some(out)
}

/// `early_refresh = 1.0`: XFetch's β, a positive number (1.0 is the paper's default; larger
/// refreshes earlier).
fn beta(value: &Expr, errors: &mut Errors) -> Option<syn::LitFloat> {
    let fix = "write a positive number, e.g. `early_refresh = 1.0` (XFetch's beta; larger refreshes earlier)";
    let parsed = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Float(f), ..
        }) => f.base10_parse::<f64>().ok(),
        Expr::Lit(ExprLit {
            lit: Lit::Int(i), ..
        }) => i.base10_parse::<f64>().ok(),
        _ => None,
    };
    match parsed {
        Some(beta) if beta > 0.0 && beta.is_finite() && beta <= 100.0 => {
            Some(syn::LitFloat::new(&format!("{beta:?}"), value.span()))
        }
        Some(_) => {
            errors.push(
                value.span(),
                format!("`early_refresh` must be greater than 0 and at most 100; {fix}"),
            );
            None
        }
        None => {
            let what = match value {
                Expr::Lit(ExprLit {
                    lit: Lit::Str(_), ..
                }) => "a string",
                Expr::Unary(_) => "a negative number",
                _ => "not a number literal",
            };
            errors.push(
                value.span(),
                format!("`early_refresh` takes a number, got {what}; {fix}"),
            );
            None
        }
    }
}

fn seconds(value: &Expr, name: &str, errors: &mut Errors) -> Option<Secs> {
    positive_int(value, name, "seconds", errors)
}

/// A whole number > 0 of `unit`s (its span kept for later checks).
fn positive_int(value: &Expr, name: &str, unit: &str, errors: &mut Errors) -> Option<Secs> {
    let example = if unit == "seconds" { 600 } else { 250 };
    let fix =
        format!("write a whole number of {unit} greater than zero, e.g. `{name} = {example}`");
    let msg = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => {
            if !int.suffix().is_empty() && !matches!(int.suffix(), "u32" | "u64" | "usize") {
                format!(
                    "`{name}` is in seconds and takes no `{}` suffix; {fix}",
                    int.suffix()
                )
            } else {
                match int.base10_parse::<u64>() {
                    Ok(0) => format!("`{name}` must be greater than zero; {fix}"),
                    Ok(n) if n > u64::from(u32::MAX) => {
                        format!("`{name}` of {n} {unit} is too long; {fix}")
                    }
                    Ok(secs) => {
                        return Some(Secs {
                            secs,
                            span: value.span(),
                        });
                    }
                    Err(_) => format!("`{name}` is too large; {fix}"),
                }
            }
        }
        Expr::Lit(ExprLit {
            lit: Lit::Float(_), ..
        }) => {
            format!("`{name}` takes whole seconds, not a float; {fix}")
        }
        Expr::Lit(ExprLit {
            lit: Lit::Str(_), ..
        }) => {
            format!("`{name}` takes an integer, not a string; {fix}")
        }
        Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)) => {
            format!("`{name}` cannot be negative; {fix}")
        }
        _ => format!("`{name}` takes an integer literal; {fix}"),
    };
    errors.push(value.span(), msg);
    None
}

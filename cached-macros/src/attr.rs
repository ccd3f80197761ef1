//! Parsing the attribute's arguments into a typed model, collecting every error.

use proc_macro2::{Span, TokenStream};
use quote::ToTokens;
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
    CachePut,
}

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::CacheAside => "cache_aside",
            Kind::Invalidates => "invalidates",
            Kind::CachePut => "cache_put",
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
                "sliding",
                "tags",
                "cache",
                "crate",
            ],
            Kind::Invalidates => &["key", "keys", "tags", "cache", "crate"],
            Kind::CachePut => &["key", "ttl", "tags", "cache", "crate"],
        }
    }

    /// Whether `ttl` is required: the attribute stores values.
    fn needs_ttl(self) -> bool {
        matches!(self, Kind::CacheAside | Kind::CachePut)
    }

    /// Why `option`, an option of another attribute, does not apply to this one; `None` if it
    /// is no other attribute's option either (a typo, or made up).
    fn misplaced(self, option: &str) -> Option<String> {
        let list = self.options().join(", ");
        let why = match (self, option) {
            (Kind::Invalidates, _) if Kind::CacheAside.options().contains(&option) => {
                return Some(format!(
                    "`{option}` is an option of #[cache_aside], not #[invalidates] (which only deletes keys); valid options are: {list}"
                ));
            }
            (Kind::CachePut, "keys") => {
                return Some(format!(
                    "`keys` is an option of #[invalidates], not #[cache_put], which stores its result under one `key = \"...\"`; valid options are: {list}"
                ));
            }
            (Kind::CachePut, "null_ttl") => {
                "a put of `None` deletes the key instead of caching a \"not found\"".to_owned()
            }
            (Kind::CachePut, "lock") => {
                "a put takes no lease (it replaces the value and voids any load in flight)"
                    .to_owned()
            }
            (Kind::CachePut, "stale" | "early_refresh" | "fail_safe" | "timeout") => format!(
                "a put only stores the value; how it is served as it ages is up to the #[cache_aside] that reads the key, so put `{option}` there"
            ),
            _ => return None,
        };
        Some(format!(
            "`{option}` is an option of #[cache_aside], not #[{}]: {why}; valid options are: {list}",
            self.name()
        ))
    }

    fn example(self) -> &'static str {
        match self {
            Kind::CacheAside => "#[cache_aside(key = \"user:<id>\", ttl = 600)]",
            Kind::Invalidates => "#[invalidates(key = \"user:<id>\")]",
            Kind::CachePut => "#[cache_put(key = \"user:<id>\", ttl = 600)]",
        }
    }
}

/// How an option is written, for messages: `ttl = <seconds>`, e.g. `ttl = 600`.
fn form(option: &str) -> Option<&'static str> {
    Some(match option {
        "key" => "`key = \"user:<id>\"`",
        "keys" => "`keys = [\"user:<id>\", \"users:all\"]`",
        "tags" => "`tags = [\"category:<cat>\", \"products\"]`",
        "ttl" => "`ttl = <seconds>`, e.g. `ttl = 600`",
        "null_ttl" => "`null_ttl = <seconds>`, e.g. `null_ttl = 30`",
        "lock" => "`lock = false` (stampede protection is on by default)",
        "stale" => "`stale = <seconds>`, e.g. `stale = 30`",
        "early_refresh" => "`early_refresh = <beta>`, e.g. `early_refresh = 1.0`",
        "fail_safe" => "`fail_safe = <seconds>`, e.g. `fail_safe = 3600`",
        "timeout" => "`timeout = <milliseconds>`, e.g. `timeout = 250`",
        "sliding" => "`sliding = true` (every hit resets the entry's TTL)",
        "cache" => "`cache = <expression>`, e.g. `cache = self.cache`",
        "crate" => "`crate = \"cached_runtime\"`",
        _ => return None,
    })
}

/// Optimal string alignment distance (Levenshtein plus swapping two neighbours), ignoring case.
fn distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.to_lowercase().chars().collect();
    let b: Vec<char> = b.to_lowercase().chars().collect();
    // rows[i][j]: distance between a[..i] and b[..j].
    let mut rows = vec![vec![0; b.len() + 1]; a.len() + 1];
    rows[0] = (0..=b.len()).collect();
    for (i, row) in rows.iter_mut().enumerate() {
        row[0] = i;
    }
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut d = (rows[i - 1][j] + 1)
                .min(rows[i][j - 1] + 1)
                .min(rows[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                d = d.min(rows[i - 2][j - 2] + 1);
            }
            rows[i][j] = d;
        }
    }
    rows[a.len()][b.len()]
}

/// The option `written` most probably means, if one is close: a typo (at most one edit per
/// three letters, as rustc's suggestions) or a word of it (`ttl_secs`, `null`).
fn nearest<'a>(written: &str, options: impl Iterator<Item = &'a str>) -> Option<&'a str> {
    let lower = written.to_lowercase();
    let limit = written.chars().count().max(3) / 3;
    options
        .filter_map(|option| {
            let d = distance(written, option);
            let word = lower.starts_with(&format!("{option}_"))
                || option.starts_with(&format!("{lower}_"));
            if d <= limit {
                Some((d, option))
            } else if word {
                Some((limit + 1, option))
            } else {
                None
            }
        })
        .min_by_key(|(d, _)| *d)
        .map(|(_, option)| option)
}

/// What to say about the unknown options of one attribute.
struct Unknown {
    kind: Kind,
    /// Each unknown option and the option it probably means.
    suggestions: Vec<(String, Option<&'static str>)>,
    /// Required options neither written nor suggested for a typo.
    missing: Vec<&'static str>,
}

impl Unknown {
    fn new(kind: Kind, written: &[String]) -> Self {
        let is_written = |o: &str| written.iter().any(|w| w == o);
        let suggestions: Vec<(String, Option<&'static str>)> = written
            .iter()
            .filter(|w| !kind.options().contains(&w.as_str()))
            .map(|w| {
                // An option already written is not what a second spelling means.
                let candidates = kind.options().iter().copied().filter(|o| !is_written(o));
                (w.clone(), nearest(w, candidates))
            })
            .collect();
        let covered = |o: &str| is_written(o) || suggestions.iter().any(|(_, s)| *s == Some(o));
        let mut missing = Vec::new();
        let tags_alone = kind == Kind::Invalidates && covered("tags");
        if !covered("key") && !covered("keys") && !tags_alone {
            missing.push("key");
        }
        if kind.needs_ttl() && !covered("ttl") {
            missing.push("ttl");
        }
        Unknown {
            kind,
            suggestions,
            missing,
        }
    }

    /// The error for the unknown option `name`, and the option it is taken to mean (whose
    /// "missing" error is then left out: the user wrote it, misspelled).
    fn message(
        &self,
        name: &Ident,
        value: Option<&Expr>,
        claimed: &[&'static str],
    ) -> (String, Option<&'static str>) {
        let n = name.to_string();
        let attr = self.kind.name();
        let list = self.kind.options().join(", ");
        if let Some(message) = self.kind.misplaced(&n) {
            return (message, None);
        }
        let suggestion = self
            .suggestions
            .iter()
            .find(|(w, _)| *w == n)
            .and_then(|(_, s)| *s);
        if let Some(option) = suggestion {
            let form = form(option).expect("every option has a form");
            return (
                format!("unknown option `{n}` for #[{attr}]; did you mean `{option}`? ({form})"),
                Some(option),
            );
        }
        // Nothing close by name: it may still be a required option under another name
        // (`expire = 60` for `ttl`), told apart by its value.
        let is_string = matches!(
            value,
            Some(Expr::Lit(ExprLit {
                lit: Lit::Str(_),
                ..
            }))
        );
        let meant = self
            .missing
            .iter()
            .copied()
            .filter(|o| !claimed.contains(o))
            .find(|o| (*o == "key") == is_string);
        let hint = match (meant, value) {
            (Some("key"), Some(v)) => {
                format!(
                    "; if this is the key, write `key = {}`",
                    v.to_token_stream()
                )
            }
            (
                Some("ttl"),
                Some(
                    v @ Expr::Lit(ExprLit {
                        lit: Lit::Int(_), ..
                    }),
                ),
            ) => format!(
                "; if this is the TTL, write `ttl = {}` (seconds)",
                v.to_token_stream()
            ),
            (Some(option), _) => format!(
                "; if this is the missing `{option}`, write {}",
                form(option).expect("every option has a form")
            ),
            (None, _) => String::new(),
        };
        (
            format!("unknown option `{n}` for #[{attr}]; valid options are: {list}{hint}"),
            meant,
        )
    }
}

/// One `name = value` argument.
struct Arg {
    name: Ident,
    value: Expr,
}

/// One argument as written: `name = value`, or a bare `name` (an error, reported by `parse`,
/// which knows the options).
enum Item {
    Arg(Arg),
    Flag(Ident),
}

impl Item {
    fn name(&self) -> &Ident {
        match self {
            Item::Arg(arg) => &arg.name,
            Item::Flag(name) => name,
        }
    }
}

/// The argument list. A malformed argument is an error of its own; the others still count,
/// so that one typo does not also report every other option as missing.
struct ArgList(Vec<Item>);

impl Parse for ArgList {
    fn parse(input: ParseStream<'_>) -> syn::Result<Self> {
        let mut args = Vec::new();
        while !input.is_empty() {
            let name = Ident::parse_any(input)?;
            if input.peek(Token![=]) {
                input.parse::<Token![=]>()?;
                args.push(Item::Arg(Arg {
                    name,
                    value: input.parse()?,
                }));
            } else {
                args.push(Item::Flag(name));
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

    /// Where the option's name was written, if it was.
    fn name_span(&self) -> Option<Span> {
        self.value.as_ref().map(|(name, _)| name.span())
    }
}

/// A duration option in its unit (seconds, or milliseconds for `timeout`), with the span of
/// its value.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Amount {
    pub(crate) value: u64,
    pub(crate) span: Span,
}

/// The parsed arguments of either attribute.
pub(crate) struct Args {
    pub(crate) keys: Vec<LitStr>,
    /// Tag templates (`tags = [...]`).
    pub(crate) tags: Vec<LitStr>,
    pub(crate) ttl: Option<Amount>,
    pub(crate) null_ttl: Option<Amount>,
    pub(crate) cache: Option<Expr>,
    pub(crate) krate: Option<Path>,
    /// `lock = false` turns stampede protection off.
    pub(crate) lock: bool,
    pub(crate) stale: Option<Amount>,
    pub(crate) fail_safe: Option<Amount>,
    /// XFetch β, as written.
    pub(crate) early_refresh: Option<syn::LitFloat>,
    /// Milliseconds.
    pub(crate) timeout: Option<Amount>,
    /// `sliding = true`: every hit resets the entry's TTL.
    pub(crate) sliding: bool,
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
    let mut tags = Once::new();
    let mut sliding = Once::new();

    let list = match syn::parse2::<ArgList>(args) {
        Ok(ArgList(list)) => list,
        Err(e) => {
            errors.add(e);
            Vec::new()
        }
    };
    // Options written at all, valid or not: a bad value is reported once, at the value, not
    // again as "missing". An unknown option counts as the one it was probably meant to be.
    let mut seen: Vec<String> = list.iter().map(|item| item.name().to_string()).collect();
    let unknown = Unknown::new(kind, &seen);
    let mut claimed = Vec::new();
    let mut repeated_keys = Vec::new();
    for item in list {
        let n = item.name().to_string();
        if !kind.options().contains(&n.as_str()) {
            let value = match &item {
                Item::Arg(arg) => Some(&arg.value),
                Item::Flag(_) => None,
            };
            let (message, meant) = unknown.message(item.name(), value, &claimed);
            errors.push(item.name().span(), message);
            claimed.extend(meant);
            continue;
        }
        let Arg { name, value } = match item {
            Item::Arg(arg) => arg,
            Item::Flag(name) => {
                let form = form(&n).expect("every option has a form");
                errors.push(name.span(), format!("expected {form}"));
                continue;
            }
        };
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
                if let Some(list) = string_list(&value, "keys", errors) {
                    keys.set(&name, list, errors);
                }
            }
            "tags" => {
                if let Some(list) = string_list(&value, "tags", errors) {
                    if list.len() > MAX_TAGS {
                        errors.push_spanned(
                            &value,
                            format!(
                                "{} tags; an entry carries at most {MAX_TAGS}: tag groups of entries (`category:<cat>`), not each entry",
                                list.len()
                            ),
                        );
                    }
                    tags.set(&name, list, errors);
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
                other => errors.push_spanned(
                    other,
                    "`lock` takes `true` (the default: one load per key at a time) or `false`",
                ),
            },
            "sliding" => match &value {
                Expr::Lit(ExprLit {
                    lit: Lit::Bool(b), ..
                }) => sliding.set(&name, b.value, errors),
                other => errors.push_spanned(
                    other,
                    "`sliding` takes `true` (every hit resets the entry's TTL to `ttl`: sliding expiration) or `false` (the default: an entry expires `ttl` after it was stored)",
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
    seen.extend(claimed.iter().map(|n| (*n).to_owned()));
    let given = |n: &str| seen.iter().any(|s| s == n);
    let tags_span = tags.name_span();
    let tags = tags.get().unwrap_or_default();
    let tags_alone = kind == Kind::Invalidates && given("tags");
    if all_keys.is_empty() && !given("key") && !given("keys") && !tags_alone {
        let or_tags = if kind == Kind::Invalidates {
            " (or tags: `tags = [\"category:<cat>\"]`)"
        } else {
            ""
        };
        errors.push(
            Span::call_site(),
            format!(
                "#[{}] needs a key: add `key = \"...\"` with `<param>` placeholders, e.g. {}{or_tags}",
                kind.name(),
                kind.example()
            ),
        );
    }
    let ttl = ttl.get();
    let null_ttl = null_ttl.get();
    if kind.needs_ttl() {
        match (ttl, null_ttl) {
            (None, _) if given("ttl") => {}
            (None, _) => errors.push(
                Span::call_site(),
                format!(
                    "#[{}] needs a TTL: add `ttl = <seconds>`, e.g. `ttl = 600`; every cached entry must expire",
                    kind.name()
                ),
            ),
            (Some(ttl), Some(null)) if null.value > ttl.value => errors.push(
                null.span,
                format!(
                    "`null_ttl` ({}) is longer than `ttl` ({}); a cached \"not found\" should expire no later than a value: use at most `null_ttl = {}`",
                    null.value, ttl.value, ttl.value
                ),
            ),
            _ => {}
        }
    }
    // An option that contradicts `sliding` is reported at its name.
    let fixed_expiry = [
        ("stale", stale.name_span()),
        ("early_refresh", early_refresh.name_span()),
        ("fail_safe", fail_safe.name_span()),
        ("timeout", timeout.name_span()),
        ("tags", tags_span),
    ];
    let (timeout, fail_safe, early_refresh) = (timeout.get(), fail_safe.get(), early_refresh.get());
    let sliding = sliding.get().unwrap_or(false);
    if sliding {
        for (option, span) in fixed_expiry {
            if let Some(span) = span {
                errors.push(span, contradicts_sliding(option));
            }
        }
    } else if let Some(t) = timeout
        && fail_safe.is_none()
        && early_refresh.is_none()
    {
        errors.push(
            t.span,
            "`timeout` (milliseconds a caller waits for a load) needs a cached value to stand in when it runs out: add `fail_safe = <seconds>`, e.g. `fail_safe = 3600`, or `early_refresh = 1.0`",
        );
    }
    Args {
        keys: all_keys,
        tags,
        ttl,
        null_ttl,
        cache: cache.get(),
        krate: krate.get(),
        lock: lock.get().unwrap_or(true),
        stale: stale.get(),
        fail_safe,
        early_refresh,
        timeout,
        sliding,
    }
}

/// Why `option` cannot be combined with `sliding = true`: each assumes a fixed expiry, and a
/// sliding entry's expiry moves with every hit.
fn contradicts_sliding(option: &str) -> String {
    let why = match option {
        "stale" => {
            "`stale` serves a value for a while past its expiry, and a sliding entry has no such while: it is in Redis and fresh, or gone"
        }
        "early_refresh" => {
            "`early_refresh` refreshes a value ahead of a fixed expiry, and a sliding entry's expiry moves with every hit (a hot key never expires)"
        }
        "fail_safe" => {
            "`fail_safe` keeps a value in Redis past its TTL, and a sliding entry lives exactly `ttl` past its last hit"
        }
        "timeout" => {
            "`timeout` needs a cached value to stand in for a slow load (one kept past its TTL by `fail_safe`, or one being refreshed early by `early_refresh`), and a sliding entry can have neither"
        }
        _ => {
            return "`tags` cannot be combined with `sliding = true`: a sliding entry can outlive its `ttl`, but its tags' versions are kept only for the `ttl` it was stored with, so after `ttl` every hit would be a miss; remove `tags` and invalidate the entry by its key (`#[invalidates(key = \"...\")]`), or drop `sliding = true` to keep a fixed expiry".to_owned();
        }
    };
    format!(
        "`{option}` cannot be combined with `sliding = true`: {why}; remove `{option}`, or drop `sliding = true` to keep a fixed expiry"
    )
}

fn string(value: &Expr, name: &str, example: &str, errors: &mut Errors) -> Option<LitStr> {
    match value {
        Expr::Lit(ExprLit {
            lit: Lit::Str(s), ..
        }) => Some(s.clone()),
        other => {
            errors.push_spanned(
                other,
                format!("`{name}` takes a string literal, e.g. `{example}`"),
            );
            None
        }
    }
}

/// Most tags on one function (an entry records at most 255).
const MAX_TAGS: usize = 255;

/// `keys = [...]` or `tags = [...]`: a list of string literals.
fn string_list(value: &Expr, name: &str, errors: &mut Errors) -> Option<Vec<LitStr>> {
    let (example, what) = match name {
        "tags" => ("tags = [\"category:<cat>\", \"products\"]", "tag"),
        _ => ("keys = [\"user:<id>\", \"users:all\"]", "key"),
    };
    let Expr::Array(array) = value else {
        errors.push_spanned(
            value,
            format!("`{name}` takes a list of string literals, e.g. `{example}`"),
        );
        return None;
    };
    if array.elems.is_empty() {
        let hint = if name == "tags" {
            ", or leave `tags` out"
        } else {
            ""
        };
        errors.push_spanned(
            array,
            format!("`{name}` is empty; list at least one {what} template{hint}"),
        );
    }
    let mut out = Vec::new();
    for elem in &array.elems {
        out.extend(string(elem, name, example, errors));
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
            errors.push_spanned(
                value,
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
            errors.push_spanned(
                value,
                format!("`early_refresh` takes a number, got {what}; {fix}"),
            );
            None
        }
    }
}

fn seconds(value: &Expr, name: &str, errors: &mut Errors) -> Option<Amount> {
    positive_int(value, name, "seconds", errors)
}

/// A whole number > 0 of `unit`s (its span kept for later checks).
fn positive_int(value: &Expr, name: &str, unit: &str, errors: &mut Errors) -> Option<Amount> {
    let example = if unit == "seconds" { 600 } else { 250 };
    let fix =
        format!("write a whole number of {unit} greater than zero, e.g. `{name} = {example}`");
    let msg = match value {
        Expr::Lit(ExprLit {
            lit: Lit::Int(int), ..
        }) => {
            if !int.suffix().is_empty() && !matches!(int.suffix(), "u32" | "u64" | "usize") {
                format!(
                    "`{name}` is in {unit} and takes no `{}` suffix; {fix}",
                    int.suffix()
                )
            } else {
                match int.base10_parse::<u64>() {
                    Ok(0) => format!("`{name}` must be greater than zero; {fix}"),
                    Ok(n) if n > u64::from(u32::MAX) => {
                        format!("`{name}` of {n} {unit} is too long; {fix}")
                    }
                    Ok(n) => {
                        return Some(Amount {
                            value: n,
                            span: value.span(),
                        });
                    }
                    Err(_) => format!(
                        "`{name}` of more than {} {unit} is too long; {fix}",
                        u32::MAX
                    ),
                }
            }
        }
        Expr::Lit(ExprLit {
            lit: Lit::Float(float),
            ..
        }) => {
            // `timeout = 0.5` is most likely half a second.
            let as_ms = float
                .base10_parse::<f64>()
                .ok()
                .map(|secs| secs * 1000.0)
                .filter(|ms| *ms >= 1.0 && *ms <= f64::from(u32::MAX) && ms.fract() == 0.0);
            match as_ms {
                Some(ms) if unit == "milliseconds" => format!(
                    "`{name}` takes whole {unit}, not a float; for {} seconds, write `{name} = {ms}`",
                    float.base10_digits()
                ),
                _ => format!("`{name}` takes whole {unit}, not a float; {fix}"),
            }
        }
        Expr::Lit(ExprLit {
            lit: Lit::Str(_), ..
        }) => {
            format!("`{name}` takes an integer, not a string; {fix}")
        }
        Expr::Unary(u) if matches!(u.op, syn::UnOp::Neg(_)) => {
            format!("`{name}` cannot be negative; {fix}")
        }
        _ => format!("`{name}` takes an integer literal ({unit}); {fix}"),
    };
    errors.push_spanned(value, msg);
    None
}

#[cfg(test)]
mod tests {
    use super::{Kind, nearest};

    fn near(written: &str, kind: Kind) -> Option<&'static str> {
        nearest(written, kind.options().iter().copied())
    }

    #[test]
    fn suggests_close_options_only() {
        assert_eq!(near("tll", Kind::CacheAside), Some("ttl"));
        assert_eq!(near("TTL", Kind::CacheAside), Some("ttl"));
        assert_eq!(near("nul_ttl", Kind::CacheAside), Some("null_ttl"));
        assert_eq!(near("cahce", Kind::CacheAside), Some("cache"));
        assert_eq!(near("timout", Kind::CacheAside), Some("timeout"));
        assert_eq!(near("failsafe", Kind::CacheAside), Some("fail_safe"));
        assert_eq!(
            near("early_refesh", Kind::CacheAside),
            Some("early_refresh")
        );
        assert_eq!(near("keys", Kind::CacheAside), Some("key"));
        assert_eq!(near("ttl_secs", Kind::CacheAside), Some("ttl"));
        assert_eq!(near("slidng", Kind::CacheAside), Some("sliding"));
        assert_eq!(near("sliding_ttl", Kind::CacheAside), Some("sliding"));
        assert_eq!(near("kyes", Kind::Invalidates), Some("keys"));
        assert_eq!(near("expire", Kind::CacheAside), None);
        assert_eq!(near("bogus", Kind::CacheAside), None);
        assert_eq!(near("tll", Kind::CachePut), Some("ttl"));
        assert_eq!(near("kye", Kind::CachePut), Some("key"));
        assert_eq!(near("cahce", Kind::CachePut), Some("cache"));
        assert_eq!(near("x", Kind::CacheAside), None);
    }
}

//! Key templates: literal text with `<param>` / `<param.field>` placeholders.

use syn::LitStr;

use crate::errors::Errors;

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    Lit(String),
    /// `<a.b.c>`: the parameter (or `self`) and the fields after it.
    Place(Vec<String>),
}

/// Characters a template's literal text may not hold: values escape them, so literal text with
/// them could collide with a value, or read as a glob pattern or a cluster hash tag.
const FORBIDDEN: &[char] = &['*', '?', '[', ']', '\\', '{', '}', '%', '#'];

/// Parses a template; problems go into `errors` (all at the literal's span, with the
/// placeholder named in the message).
pub(crate) fn parse(lit: &LitStr, errors: &mut Errors) -> Vec<Piece> {
    let text = lit.value();
    let span = lit.span();
    let before = errors.is_empty();
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars();
    if text.is_empty() {
        errors.push(
            span,
            "the key template is empty; write e.g. `key = \"user:<id>\"`",
        );
    }
    if text.starts_with(':') {
        errors.push(
            span,
            "the key template starts with `:`; the namespace separator is added for you, write e.g. `key = \"user:<id>\"`",
        );
    }
    while let Some(c) = chars.next() {
        match c {
            '<' => {
                let mut inner = String::new();
                let mut closed = false;
                for c in chars.by_ref() {
                    if c == '>' {
                        closed = true;
                        break;
                    }
                    inner.push(c);
                }
                if !closed {
                    errors.push(
                        span,
                        format!(
                            "unclosed placeholder `<{inner}` in key template; close it with `>`"
                        ),
                    );
                    break;
                }
                let name = inner.trim();
                if name.is_empty() {
                    errors.push(
                        span,
                        "empty placeholder `<>` in key template; name a parameter, e.g. `<id>`",
                    );
                    continue;
                }
                let path: Vec<String> = name
                    .split('.')
                    .map(|seg| seg.strip_prefix("r#").unwrap_or(seg).to_owned())
                    .collect();
                if let Some(bad) = path.iter().find(|seg| !is_ident_or_index(seg)) {
                    errors.push(
                        span,
                        format!(
                            "placeholder `<{name}>` is not a parameter name or field path (`{bad}`); write e.g. `<id>` or `<self.tenant>`"
                        ),
                    );
                    continue;
                }
                if let Some(Piece::Place(prev)) = pieces.last()
                    && literal.is_empty()
                {
                    errors.push(
                        span,
                        format!(
                            "placeholders `<{}>` and `<{name}>` touch; separate them with `:` (e.g. `<{}>:<{name}>`) so that keys stay unambiguous",
                            prev.join("."),
                            prev.join(".")
                        ),
                    );
                }
                if !literal.is_empty() {
                    if let Some(Piece::Place(prev)) = pieces.last()
                        && !literal.contains(':')
                    {
                        errors.push(
                            span,
                            format!(
                                "placeholders `<{}>` and `<{name}>` are separated by `{literal}`, which values may contain; put a `:` between them (e.g. `<{}>:<{name}>`) so that keys stay unambiguous",
                                prev.join("."),
                                prev.join(".")
                            ),
                        );
                    }
                    pieces.push(Piece::Lit(std::mem::take(&mut literal)));
                }
                pieces.push(Piece::Place(path));
            }
            '>' => {
                errors.push(span, "`>` without a matching `<` in key template");
            }
            c if FORBIDDEN.contains(&c) || c.is_whitespace() || c.is_control() => {
                errors.push(
                    span,
                    format!(
                        "key template contains {c:?}; use letters, digits, `:`, `-`, `_`, `.` and `<placeholders>` (values are escaped for you)"
                    ),
                );
            }
            c => literal.push(c),
        }
    }
    if !literal.is_empty() {
        pieces.push(Piece::Lit(literal));
    }
    if before && !errors.is_empty() {
        return Vec::new();
    }
    pieces
}

fn is_ident_or_index(s: &str) -> bool {
    if !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit()) {
        return true;
    }
    let s = s.strip_prefix("r#").unwrap_or(s);
    let mut chars = s.chars();
    matches!(chars.next(), Some(c) if c == '_' || c.is_alphabetic())
        && chars.all(|c| c == '_' || c.is_alphanumeric())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(t: &str) -> Vec<Piece> {
        let mut e = Errors::default();
        let p = parse(&LitStr::new(t, proc_macro2::Span::call_site()), &mut e);
        assert!(e.is_empty(), "{t}: {}", e.into_compile_errors());
        p
    }

    fn err(t: &str) -> String {
        let mut e = Errors::default();
        parse(&LitStr::new(t, proc_macro2::Span::call_site()), &mut e);
        e.into_compile_errors().to_string()
    }

    #[test]
    fn parses() {
        assert_eq!(
            ok("user:<id>"),
            vec![Piece::Lit("user:".into()), Piece::Place(vec!["id".into()])]
        );
        assert_eq!(
            ok("t:<self.tenant>:u:<id>:v2"),
            vec![
                Piece::Lit("t:".into()),
                Piece::Place(vec!["self".into(), "tenant".into()]),
                Piece::Lit(":u:".into()),
                Piece::Place(vec!["id".into()]),
                Piece::Lit(":v2".into()),
            ]
        );
        assert_eq!(ok("<pair.0>").len(), 1);
        assert_eq!(ok("all-users"), vec![Piece::Lit("all-users".into())]);
    }

    #[test]
    fn rejects() {
        assert!(err("user:<id").contains("unclosed placeholder"));
        assert!(err("user:<>").contains("empty placeholder"));
        assert!(err("<a><b>").contains("touch"));
        assert!(err("<a>-<b>").contains("separated by `-`"));
        assert!(err("user:*").contains("'*'"));
        assert!(err("user id").contains("' '"));
        assert!(err("").contains("empty"));
        assert!(err(":user").contains("starts with `:`"));
        assert!(err("<a-b>").contains("not a parameter name"));
        assert!(err("a>b").contains("without a matching"));
    }
}

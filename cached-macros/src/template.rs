//! Key and tag templates: literal text with `<param>` / `<param.field>` placeholders.

use syn::LitStr;

use crate::errors::Errors;

/// What a template renders, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Of {
    Key,
    Tag,
}

impl Of {
    fn name(self) -> &'static str {
        match self {
            Of::Key => "key",
            Of::Tag => "tag",
        }
    }

    fn example(self) -> &'static str {
        match self {
            Of::Key => "`key = \"user:<id>\"`",
            Of::Tag => "`tags = [\"category:<cat>\"]`",
        }
    }
}

#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Piece {
    Lit(String),
    /// `<a.b.c>`: the parameter (or `self`) and the fields after it.
    Place(Vec<String>),
}

/// Characters a template's literal text may not hold: values escape them, so literal text with
/// them could collide with a value, or read as a glob pattern or a cluster hash tag.
const FORBIDDEN: &[char] = &['*', '?', '[', ']', '\\', '{', '}', '%', '#'];

/// Parses a template of a key or a tag (`of`); problems go into `errors` (all at the literal's
/// span, with the placeholder named in the message).
pub(crate) fn parse(lit: &LitStr, of: Of, errors: &mut Errors) -> Vec<Piece> {
    let (what, example) = (of.name(), of.example());
    let text = lit.value();
    let span = lit.span();
    let before = errors.is_empty();
    let mut pieces = Vec::new();
    let mut literal = String::new();
    let mut chars = text.chars();
    if text.is_empty() {
        errors.push(
            span,
            format!("the {what} template is empty; write e.g. {example}"),
        );
    }
    if text.starts_with(':') {
        errors.push(
            span,
            format!(
                "the {what} template starts with `:`; the namespace separator is added for you, write e.g. {example}"
            ),
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
                            "unclosed placeholder `<{inner}` in {what} template; close it with `>`"
                        ),
                    );
                    break;
                }
                let name = inner.trim();
                if name.is_empty() {
                    errors.push(
                        span,
                        format!(
                            "empty placeholder `<>` in {what} template; name a parameter, e.g. `<id>`"
                        ),
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
                            "placeholders `<{}>` and `<{name}>` touch; separate them with `:` (e.g. `<{}>:<{name}>`) so that {what}s stay unambiguous",
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
                                "placeholders `<{}>` and `<{name}>` are separated by `{literal}`, which values may contain; put a `:` between them (e.g. `<{}>:<{name}>`) so that {what}s stay unambiguous",
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
                errors.push(
                    span,
                    format!("`>` without a matching `<` in {what} template"),
                );
            }
            c if FORBIDDEN.contains(&c) || c.is_whitespace() || c.is_control() => {
                errors.push(
                    span,
                    format!(
                        "{what} template contains {c:?}; use letters, digits, `:`, `-`, `_`, `.` and `<placeholders>` (values are escaped for you)"
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
        let p = parse(
            &LitStr::new(t, proc_macro2::Span::call_site()),
            Of::Key,
            &mut e,
        );
        assert!(e.is_empty(), "{t}: {}", e.into_compile_errors());
        p
    }

    fn err_of(t: &str, of: Of) -> String {
        let mut e = Errors::default();
        parse(&LitStr::new(t, proc_macro2::Span::call_site()), of, &mut e);
        e.into_compile_errors().to_string()
    }

    fn err(t: &str) -> String {
        err_of(t, Of::Key)
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

    #[test]
    fn tag_templates_are_named_so() {
        assert!(err_of("category:*", Of::Tag).contains("tag template contains '*'"));
        assert!(err_of("", Of::Tag).contains("the tag template is empty"));
        assert!(err_of("<a><b>", Of::Tag).contains("tags stay unambiguous"));
        assert!(!err_of("<a", Of::Tag).contains("key"));
    }
}

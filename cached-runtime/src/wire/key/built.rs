//! Keys built at run time with the templates' rules.

use std::fmt;

use super::{KeyPart, KeyWriter, MAX_KEY_LEN, escape_into, shorten};

/// A key (or tag) relative to the namespace, built at run time exactly as a template renders
/// it: `Key::new("user").part(id)` is `user:42` for `id = 42`, the key that
/// `key = "user:<id>"` gives. Each [`part`](Self::part) is a value, escaped by the
/// [`KeyPart`] rules (`:`, `{`, `}`, glob characters, `%`, whitespace and controls become
/// `%XX`), so two different values never make the same key and a value cannot add a segment,
/// a hash tag or a pattern. Text given to [`new`](Self::new) and [`text`](Self::text) is the
/// fixed part of the key: its `:` separate segments and everything else is escaped alike.
///
/// ```
/// use cached_runtime::Key;
///
/// assert_eq!(Key::new("user").part(42).as_str(), "user:42");
/// assert_eq!(Key::new("search").part("rust: async").part(2).as_str(), "search:rust%3A%20async:2");
/// assert_eq!(Key::new("user").part(7).text("posts").as_str(), "user:7:posts");
/// ```
///
/// Pass it wherever a key or tag relative to the namespace is taken
/// ([`Cache::get_or_load`](crate::Cache::get_or_load), [`Cache::entry`](crate::Cache::entry),
/// [`Entry::tags`](crate::Entry::tags), [`Cache::invalidate_tags`](crate::Cache::invalidate_tags),
/// ...). A key longer than [`MAX_KEY_LEN`] with its namespace is shortened as the annotations
/// shorten theirs, once the namespace is added.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Key(String);

/// Room for a short key's values without growing.
const ROOM: usize = 32;

impl Default for Key {
    /// An empty key, to begin with a [`part`](Self::part).
    fn default() -> Self {
        Key(String::with_capacity(ROOM))
    }
}

impl Key {
    /// A key that begins with the fixed text `text` (`"user"`, `"v2:report"`).
    pub fn new(text: &str) -> Self {
        let mut key = Key(String::with_capacity(text.len() + ROOM));
        key.push_text(text);
        key
    }

    /// Adds `:` and a value.
    pub fn part(mut self, value: impl KeyPart) -> Self {
        self.separate();
        value.write_key_part(&mut KeyWriter { out: &mut self.0 });
        self
    }

    /// Adds `:` and fixed text.
    pub fn text(mut self, text: &str) -> Self {
        self.separate();
        self.push_text(text);
        self
    }

    /// The key, relative to the namespace.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The key as a `String`.
    pub fn into_string(self) -> String {
        self.0
    }

    fn separate(&mut self) {
        if !self.0.is_empty() {
            self.0.push(':');
        }
    }

    fn push_text(&mut self, text: &str) {
        for (i, segment) in text.split(':').enumerate() {
            if i > 0 {
                self.0.push(':');
            }
            escape_into(segment, &mut self.0);
        }
    }
}

/// The full key: `namespace:relative`, shortened past [`MAX_KEY_LEN`] as rendered templates are.
pub(crate) fn full(namespace: &str, relative: &str) -> String {
    let out = super::join(namespace, relative);
    if out.len() > MAX_KEY_LEN {
        shorten(out)
    } else {
        out
    }
}

impl AsRef<str> for Key {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl std::ops::Deref for Key {
    type Target = str;
    fn deref(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&self.0, f)
    }
}

impl From<Key> for String {
    fn from(key: Key) -> String {
        key.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::key::render;

    #[test]
    fn renders_as_the_templates_do() {
        let cases: [(Key, &[&str], &[&dyn KeyPart]); 4] = [
            (Key::new("user").part(42u64), &["user:", ""], &[&42u64]),
            (
                Key::new("by-name").part("a:b c").part(-3i32),
                &["by-name:", ":", ""],
                &[&"a:b c", &-3i32],
            ),
            (
                Key::new("user").part(7u8).text("posts"),
                &["user:", ":posts"],
                &[&7u8],
            ),
            (
                Key::new("v2:report").part('{'),
                &["v2:report:", ""],
                &[&'{'],
            ),
        ];
        for (key, lits, args) in cases {
            assert_eq!(full("app", &key), render("app", lits, args));
        }
    }

    #[test]
    fn fixed_text_cannot_form_a_hash_tag_or_pattern() {
        assert_eq!(Key::new("a{b}*").as_str(), "a%7Bb%7D%2A");
        assert_eq!(Key::new("").part(1u8).as_str(), "1");
    }

    #[test]
    fn long_keys_are_shortened_like_rendered_ones() {
        let long = "x".repeat(600);
        let key = Key::new("k").part(long.as_str());
        assert_eq!(
            full("app", &key),
            render("app", &["k:", ""], &[&long.as_str()])
        );
        assert_eq!(full("app", &key).len(), MAX_KEY_LEN);
    }
}

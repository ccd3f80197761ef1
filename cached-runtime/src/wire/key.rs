//! Rendering cache keys: `<namespace>:<template with escaped values>`.
//!
//! Rendering is injective. Every byte of a value that could be confused with structure is
//! percent-escaped (`%XX`, upper-case hex): the separator `:`, the glob characters
//! `* ? [ ] \`, the Redis Cluster hash-tag braces `{ }`, `%` itself, whitespace and control
//! characters. So a value can neither split into two key segments nor become a `SCAN`/`KEYS`
//! pattern, and two different values always render differently. Templates are checked at
//! compile time so that two placeholders are always separated by a `:`.
//!
//! A key longer than [`MAX_KEY_LEN`] keeps a readable prefix and ends in `%h` and the SHA-1 of
//! the whole key; values never produce `%h`, so a shortened key cannot equal a short one.

use std::fmt::{self, Write as _};

mod built;

pub use built::Key;
pub(crate) use built::full;

/// Keys longer than this many bytes are shortened to a prefix and a hash.
pub const MAX_KEY_LEN: usize = 512;

/// Writes one placeholder value into a key, escaping it.
///
/// Handed to [`KeyPart::write_key_part`]; there is no way to write unescaped text through it.
#[derive(Debug)]
pub struct KeyWriter<'a> {
    out: &'a mut String,
}

impl KeyWriter<'_> {
    /// Writes `s`, escaping every character that is not safe in a key.
    pub fn write_str(&mut self, s: &str) {
        escape_into(s, self.out);
    }

    /// Writes a `Display` value, escaped.
    pub fn write_display(&mut self, value: &dyn fmt::Display) {
        struct Escaper<'a>(&'a mut String);
        impl fmt::Write for Escaper<'_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                escape_into(s, self.0);
                Ok(())
            }
        }
        // Writing into a String cannot fail; a `Display` impl that errors just stops early.
        let _ = write!(Escaper(self.out), "{value}");
    }

    fn write_safe(&mut self, s: &str) {
        debug_assert!(s.bytes().all(|b| !needs_escape(b)));
        self.out.push_str(s);
    }
}

/// A value that can fill a `<placeholder>` of a key template.
///
/// Implemented for integers, `bool`, `char`, `str`, `String`, references to them and
/// `uuid::Uuid` (feature `uuid`). For your own `Display` types opt in with
/// [`key_part_via_display!`](crate::key_part_via_display), or implement it by hand:
///
/// ```
/// use cached_runtime::{KeyPart, KeyWriter};
///
/// struct TenantId(u32);
///
/// impl KeyPart for TenantId {
///     fn write_key_part(&self, out: &mut KeyWriter<'_>) {
///         self.0.write_key_part(out)
///     }
/// }
/// ```
#[diagnostic::on_unimplemented(
    message = "`{Self}` cannot fill a key placeholder",
    label = "`{Self}` does not implement `KeyPart`",
    note = "placeholders take integers, `bool`, `char`, `str` and `String`; for a `Display` type write `cached_runtime::key_part_via_display!(YourType);`, or implement `cached_runtime::KeyPart`",
    note = "or name a field that is one of these, e.g. `<query.id>`"
)]
pub trait KeyPart {
    /// Writes the value; everything written through `out` is escaped.
    fn write_key_part(&self, out: &mut KeyWriter<'_>);
}

impl<T: KeyPart + ?Sized> KeyPart for &T {
    fn write_key_part(&self, out: &mut KeyWriter<'_>) {
        (**self).write_key_part(out)
    }
}

impl<T: KeyPart + ?Sized> KeyPart for Box<T> {
    fn write_key_part(&self, out: &mut KeyWriter<'_>) {
        (**self).write_key_part(out)
    }
}

impl<T: KeyPart + ?Sized> KeyPart for std::sync::Arc<T> {
    fn write_key_part(&self, out: &mut KeyWriter<'_>) {
        (**self).write_key_part(out)
    }
}

impl KeyPart for str {
    fn write_key_part(&self, out: &mut KeyWriter<'_>) {
        out.write_str(self)
    }
}

impl KeyPart for String {
    fn write_key_part(&self, out: &mut KeyWriter<'_>) {
        out.write_str(self)
    }
}

impl KeyPart for std::borrow::Cow<'_, str> {
    fn write_key_part(&self, out: &mut KeyWriter<'_>) {
        out.write_str(self)
    }
}

impl KeyPart for char {
    fn write_key_part(&self, out: &mut KeyWriter<'_>) {
        out.write_str(self.encode_utf8(&mut [0; 4]))
    }
}

impl KeyPart for bool {
    fn write_key_part(&self, out: &mut KeyWriter<'_>) {
        out.write_safe(if *self { "true" } else { "false" })
    }
}

macro_rules! int_key_part {
    ($($t:ty)*) => {$(
        impl KeyPart for $t {
            fn write_key_part(&self, out: &mut KeyWriter<'_>) {
                // Digits and `-` never need escaping. `itoa` writes the same text as
                // `Display`, without the formatting machinery (a key is rendered per call).
                out.write_safe(itoa::Buffer::new().format(*self));
            }
        }
    )*};
}
int_key_part!(u8 u16 u32 u64 u128 usize i8 i16 i32 i64 i128 isize);

macro_rules! nonzero_key_part {
    ($($t:ty)*) => {$(
        impl KeyPart for $t {
            fn write_key_part(&self, out: &mut KeyWriter<'_>) {
                self.get().write_key_part(out)
            }
        }
    )*};
}
nonzero_key_part!(
    std::num::NonZeroU8 std::num::NonZeroU16 std::num::NonZeroU32 std::num::NonZeroU64
    std::num::NonZeroU128 std::num::NonZeroUsize std::num::NonZeroI8 std::num::NonZeroI16
    std::num::NonZeroI32 std::num::NonZeroI64 std::num::NonZeroI128 std::num::NonZeroIsize
);

#[cfg(feature = "uuid")]
impl KeyPart for uuid::Uuid {
    fn write_key_part(&self, out: &mut KeyWriter<'_>) {
        out.write_safe(
            self.hyphenated()
                .encode_lower(&mut uuid::Uuid::encode_buffer()),
        )
    }
}

/// Implements [`KeyPart`] for types through their `Display`, escaped like strings.
///
/// ```
/// use std::fmt;
///
/// struct Sku(String);
/// impl fmt::Display for Sku {
///     fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
///         write!(f, "sku-{}", self.0)
///     }
/// }
///
/// cached_runtime::key_part_via_display!(Sku);
/// ```
#[macro_export]
macro_rules! key_part_via_display {
    ($($t:ty),+ $(,)?) => {$(
        impl $crate::KeyPart for $t {
            fn write_key_part(&self, out: &mut $crate::KeyWriter<'_>) {
                out.write_display(self)
            }
        }
    )+};
}

#[inline]
fn needs_escape(b: u8) -> bool {
    ESCAPE[b as usize]
}

/// [`needs_escape`] for ASCII bytes, as a table (a key is rendered per call); non-ASCII bytes
/// are `false` here and checked per character by [`escape_into`].
static ESCAPE: [bool; 256] = {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 128 {
        table[b] = matches!(
            b as u8,
            b'%' | b':' | b'*' | b'?' | b'[' | b']' | b'\\' | b'{' | b'}' | b'#' | 0..=0x20 | 0x7f
        );
        b += 1;
    }
    table
};

/// Escapes `s` into `out`: see the module docs for the rules.
pub(crate) fn escape_into(s: &str, out: &mut String) {
    const HEX: &[u8; 16] = b"0123456789ABCDEF";
    let bytes = s.as_bytes();
    let mut start = 0;
    let mut i = 0;
    while i < bytes.len() {
        let b = bytes[i];
        // ASCII by table; a non-ASCII character (whitespace and controls escaped) whole.
        let len = if b < 0x80 {
            if !needs_escape(b) {
                i += 1;
                continue;
            }
            1
        } else {
            let c = s[i..].chars().next().expect("i is on a char boundary");
            if !(c.is_whitespace() || c.is_control()) {
                i += c.len_utf8();
                continue;
            }
            c.len_utf8()
        };
        out.push_str(&s[start..i]);
        for &b in &bytes[i..i + len] {
            out.push('%');
            out.push(HEX[(b >> 4) as usize] as char);
            out.push(HEX[(b & 0xf) as usize] as char);
        }
        i += len;
        start = i;
    }
    out.push_str(&s[start..]);
}

/// Renders `namespace:lit0 arg0 lit1 arg1 … litN` into a full Redis key, shortening it past
/// [`MAX_KEY_LEN`]. `lits` holds the template's literal text around the placeholders (one more
/// than `args`; checked at compile time), `args` the placeholders' values.
pub(crate) fn render(namespace: &str, lits: &[&str], args: &[&dyn KeyPart]) -> String {
    debug_assert_eq!(lits.len(), args.len() + 1);
    // The literals, and room for typical values (integers, short ids) without growing.
    let mut out = String::with_capacity(
        namespace.len() + 1 + lits.iter().map(|l| l.len()).sum::<usize>() + 20 * args.len(),
    );
    if !namespace.is_empty() {
        out.push_str(namespace);
        out.push(':');
    }
    for (i, lit) in lits.iter().enumerate() {
        out.push_str(lit);
        if let Some(arg) = args.get(i) {
            arg.write_key_part(&mut KeyWriter { out: &mut out });
        }
    }
    if out.len() > MAX_KEY_LEN {
        shorten(out)
    } else {
        out
    }
}

/// `namespace:relative` (or just `relative` with an empty namespace), without escaping.
pub(crate) fn join(namespace: &str, relative: &str) -> String {
    if namespace.is_empty() {
        return relative.to_owned();
    }
    let mut out = String::with_capacity(namespace.len() + 1 + relative.len());
    out.push_str(namespace);
    out.push(':');
    out.push_str(relative);
    out
}

fn shorten(full: String) -> String {
    let digest = sha1_smol::Sha1::from(full.as_bytes()).digest().to_string();
    // "%h" + 40 hex digits.
    let mut cut = MAX_KEY_LEN - 2 - digest.len();
    while !full.is_char_boundary(cut) {
        cut -= 1;
    }
    let mut short = String::with_capacity(MAX_KEY_LEN);
    short.push_str(&full[..cut]);
    short.push_str("%h");
    short.push_str(&digest);
    short
}

/// Checks a namespace given to the builder: readable, and no characters values get escaped for
/// (other than `:`, which separates its own segments, e.g. `app:v2`).
pub(crate) fn check_namespace(ns: &str) -> Result<(), String> {
    if ns.len() > 128 {
        return Err(format!(
            "namespace is {} bytes long; keep it under 128",
            ns.len()
        ));
    }
    if ns.starts_with(':') || ns.ends_with(':') {
        return Err(format!(
            "namespace `{ns}` must not start or end with `:`; the cache adds the separator itself"
        ));
    }
    if let Some(c) = ns.chars().find(|&c| {
        c != ':' && (c.is_whitespace() || c.is_control() || (c.is_ascii() && needs_escape(c as u8)))
    }) {
        return Err(format!(
            "namespace `{}` contains {c:?}; use letters, digits, `-`, `_`, `.` and `:` (e.g. \"app:v2\")",
            ns.escape_debug()
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A template of text pieces and values, as the macros split it.
    enum Seg<'a> {
        Lit(&'static str),
        Arg(&'a dyn KeyPart),
    }

    fn split<'a>(segs: &[Seg<'a>]) -> (Vec<&'static str>, Vec<&'a dyn KeyPart>) {
        let (mut lits, mut args) = (vec![""], Vec::new());
        for seg in segs {
            match seg {
                Seg::Lit(s) => *lits.last_mut().unwrap() = s,
                Seg::Arg(a) => {
                    args.push(*a);
                    lits.push("");
                }
            }
        }
        (lits, args)
    }

    fn key(segs: &[Seg<'_>]) -> String {
        let (lits, args) = split(segs);
        render("app", &lits, &args)
    }

    #[test]
    fn readable_keys() {
        assert_eq!(key(&[Seg::Lit("user:"), Seg::Arg(&42u64)]), "app:user:42");
        assert_eq!(
            key(&[
                Seg::Lit("user:"),
                Seg::Arg(&"bob"),
                Seg::Lit(":"),
                Seg::Arg(&true)
            ]),
            "app:user:bob:true"
        );
        assert_eq!(key(&[Seg::Lit("t:"), Seg::Arg(&-7i32)]), "app:t:-7");
        assert_eq!(render("", &["x"], &[]), "x");
    }

    #[test]
    fn hostile_values_are_escaped() {
        let k = key(&[Seg::Lit("user:"), Seg::Arg(&"a:b*c?[d]\\e{f}%g h\n#")]);
        assert_eq!(k, "app:user:a%3Ab%2Ac%3F%5Bd%5D%5Ce%7Bf%7D%25g%20h%0A%23");
        // Unicode is kept readable, Unicode whitespace is escaped.
        assert_eq!(key(&[Seg::Arg(&"café\u{a0}")]), "app:café%C2%A0");
    }

    #[test]
    fn injective_on_tricky_pairs() {
        let pairs: &[(&str, &str)] = &[
            ("a:b", "c"),
            ("a", "b:c"),
            ("a%3Ab", "c"),
            ("", ""),
            ("%", ""),
            ("%25", ""),
            ("a b", ""),
            ("a%20b", ""),
        ];
        let mut seen = std::collections::HashSet::new();
        for (a, b) in pairs {
            let k = key(&[Seg::Arg(a), Seg::Lit(":"), Seg::Arg(b)]);
            assert!(seen.insert(k.clone()), "collision on {k}");
        }
    }

    #[test]
    fn long_keys_are_shortened_with_a_hash() {
        let long_a = "x".repeat(2000);
        let mut long_b = long_a.clone();
        long_b.push('y');
        let a = key(&[Seg::Arg(&long_a.as_str())]);
        let b = key(&[Seg::Arg(&long_b.as_str())]);
        assert_eq!(a.len(), MAX_KEY_LEN);
        assert!(a.starts_with("app:xxxx"));
        assert!(a[..MAX_KEY_LEN - 42].bytes().all(|c| c != b'%'));
        assert_ne!(a, b);
        // Multi-byte characters are never split.
        let wide = "é".repeat(600);
        let w = key(&[Seg::Arg(&wide.as_str())]);
        assert!(w.len() <= MAX_KEY_LEN);
    }

    #[test]
    fn display_opt_in_is_escaped() {
        struct Id(&'static str);
        impl fmt::Display for Id {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.0)
            }
        }
        crate::key_part_via_display!(Id);
        assert_eq!(key(&[Seg::Arg(&Id("a:b"))]), "app:a%3Ab");
    }

    #[test]
    fn namespaces() {
        assert!(check_namespace("app").is_ok());
        assert!(check_namespace("app:v2").is_ok());
        assert!(check_namespace("").is_ok());
        assert!(check_namespace("a b").is_err());
        assert!(check_namespace("a*").is_err());
        assert!(check_namespace("app:").is_err());
    }

    /// The escape rules, per character, written the plain way: `escape_into` (a byte scan with
    /// a table) must agree with it on every string.
    fn escape_reference(s: &str) -> String {
        let mut out = String::new();
        for c in s.chars() {
            let escape = if c.is_ascii() {
                matches!(
                    c,
                    '%' | ':' | '*' | '?' | '[' | ']' | '\\' | '{' | '}' | '#' | '\0'
                        ..=' ' | '\x7f'
                )
            } else {
                c.is_whitespace() || c.is_control()
            };
            if escape {
                for b in c.to_string().bytes() {
                    out.push_str(&format!("%{b:02X}"));
                }
            } else {
                out.push(c);
            }
        }
        out
    }

    #[test]
    fn escaping_matches_the_rules_on_every_kind_of_character() {
        let mut samples: Vec<String> = vec![
            String::new(),
            "plain-text_1.2".into(),
            "a:b*c?[d]\\e{f}%g h\n#\t\r\x7f\x00".into(),
            "café\u{a0}\u{2028}\u{3000}日本\u{85}\u{200b}x".into(),
            "\u{1F600}:\u{1F600}".into(),
        ];
        // Every ASCII byte, and a spread of code points, alone and around text.
        for c in (0u32..0x3100)
            .step_by(7)
            .chain(0..128)
            .filter_map(char::from_u32)
        {
            samples.push(format!("{c}"));
            samples.push(format!("a{c}b{c}"));
        }
        for s in &samples {
            let mut out = String::new();
            escape_into(s, &mut out);
            assert_eq!(out, escape_reference(s), "escaping {s:?}");
        }
    }

    #[test]
    fn integers_render_as_display_does() {
        fn check<T: KeyPart + std::fmt::Display>(values: &[T]) {
            for v in values {
                assert_eq!(render("", &["", ""], &[v]), v.to_string());
            }
        }
        check(&[0u8, 9, 10, u8::MAX]);
        check(&[i8::MIN, -1, 0, i8::MAX]);
        check(&[0u64, 1, 42, 1_000_000_007, u64::MAX]);
        check(&[i64::MIN, -42, 0, i64::MAX]);
        check(&[u128::MAX]);
        check(&[i128::MIN, i128::MAX]);
        check(&[usize::MAX]);
        check(&[isize::MIN]);
        check(&[std::num::NonZeroU32::new(7).expect("non-zero")]);
    }
}

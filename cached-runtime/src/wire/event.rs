//! The messages of a cache's event channel (`<namespace>:__events`), which tell every instance
//! on the same Redis that a key was filled, released or invalidated, or that a tag was.
//!
//! A message is `<version><kind>:<key>`, and a fill event of a small value carries it after a
//! NUL: `<version>f:<key>\0<value>`. The version byte is [`VERSION`]; a message without one
//! (it starts with the kind letter) is the format before versions, still understood so that
//! instances of both can share a Redis during a rolling upgrade. Keys have no NUL: key parts
//! are escaped. The Lua scripts that publish these messages are given [`Kind::prefix`] as an
//! argument, and a message published without a script is built by [`encode`], so that this
//! module alone spells the format.

/// The version byte of the messages published now.
pub(crate) const VERSION: u8 = 1;

/// What happened to a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    /// A loader stored a value (and released its lease).
    Filled,
    /// A loader gave its lease up without storing anything.
    Released,
    /// The entry and its lease were deleted.
    Invalidated,
    /// A tag was given a new version: every entry that carries it is void (the "key" of the
    /// message is the tag, `app:category:5`).
    TagInvalidated,
}

impl Kind {
    /// What a message of this kind starts with: the version byte, the kind letter, `:`.
    pub(crate) const fn prefix(self) -> &'static str {
        match self {
            Kind::Filled => "\x01f:",
            Kind::Released => "\x01r:",
            Kind::Invalidated => "\x01i:",
            Kind::TagInvalidated => "\x01t:",
        }
    }

    fn from_letter(letter: u8) -> Option<Kind> {
        match letter {
            b'f' => Some(Kind::Filled),
            b'r' => Some(Kind::Released),
            b'i' => Some(Kind::Invalidated),
            b't' => Some(Kind::TagInvalidated),
            _ => None,
        }
    }
}

/// One message, parsed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Event<'a> {
    pub(crate) kind: Kind,
    pub(crate) key: &'a str,
    /// A fill event's value, when it was small enough to be carried.
    pub(crate) value: Option<&'a [u8]>,
}

/// Parses a message; `None` for anything that is not one of ours (another version, a foreign
/// publisher on the channel, a key that is not UTF-8).
pub(crate) fn parse(payload: &[u8]) -> Option<Event<'_>> {
    let body = match payload.first()? {
        &VERSION => &payload[1..],
        // Before versions: the message starts with the kind letter.
        b'f' | b'r' | b'i' => payload,
        _ => return None,
    };
    let ([letter, b':'], rest) = body.split_first_chunk::<2>()? else {
        return None;
    };
    let kind = Kind::from_letter(*letter)?;
    let (key, value) = match rest.iter().position(|&b| b == 0) {
        Some(nul) if kind == Kind::Filled => (&rest[..nul], Some(&rest[nul + 1..])),
        Some(_) => return None,
        None => (rest, None),
    };
    Some(Event {
        kind,
        key: std::str::from_utf8(key).ok()?,
        value,
    })
}

/// A message as the scripts build it: for the fill event of a write-through, which is published
/// by a command of its own, and for tests of the parser.
pub(crate) fn encode(kind: Kind, key: &str, value: Option<&[u8]>) -> Vec<u8> {
    let mut out = Vec::from(kind.prefix().as_bytes());
    out.extend_from_slice(key.as_bytes());
    if let Some(value) = value {
        out.push(0);
        out.extend_from_slice(value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        for (kind, key, value) in [
            (Kind::Filled, "app:user:42", None),
            (Kind::Filled, "app:user:42", Some(&b"\0\x01bytes\0"[..])),
            (Kind::Filled, "app:user:42", Some(&b""[..])),
            (Kind::Released, "app:k", None),
            (Kind::Invalidated, "", None),
            (Kind::TagInvalidated, "app:category:5", None),
        ] {
            let bytes = encode(kind, key, value);
            assert_eq!(bytes[0], VERSION);
            assert_eq!(parse(&bytes), Some(Event { kind, key, value }));
        }
    }

    #[test]
    fn reads_messages_without_a_version() {
        assert_eq!(
            parse(b"f:app:k\0v"),
            Some(Event {
                kind: Kind::Filled,
                key: "app:k",
                value: Some(b"v")
            })
        );
        assert_eq!(
            parse(b"i:app:k").map(|e| (e.kind, e.key)),
            Some((Kind::Invalidated, "app:k"))
        );
    }

    #[test]
    fn ignores_what_is_not_ours() {
        for payload in [
            &b""[..],
            b"\x01",
            b"\x01f",
            b"\x02f:app:k",
            b"\x01x:app:k",
            b"hello",
            b"\x01r:app:k\0value",
            b"\x01i:\xff\xfe",
        ] {
            assert_eq!(parse(payload), None, "{payload:?}");
        }
    }
}

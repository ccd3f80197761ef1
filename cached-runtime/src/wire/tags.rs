//! Tags on the wire: the key that holds a tag's version, how a version is written there, and
//! the section of an entry that records the tags it carries and their versions when it was
//! loaded.
//!
//! A tag `app:category:5` has one Redis key, `{app:category:5}:tag`, holding its current
//! version: 16 lower-case hex digits, random. Invalidating the tag writes a new random version;
//! an entry is valid only while every tag it carries still has the version recorded in it. A
//! tag key that expired or was lost reads as no version, which matches no entry: losing tag
//! data can cost misses, never serve an invalidated entry. (Entry keys never contain `{`, so a
//! tag key cannot be an entry key.)
//!
//! The section follows the 16-byte value header when its flags have bit 1 set:
//!
//! | bytes | field |
//! |---|---|
//! | 1 | number of tags, 1–255 |
//! | per tag: 8 | the tag's version when the entry was loaded (little endian) |
//! | per tag: 2 | length of the tag's name (little endian) |
//! | per tag: n | the tag's name, with the namespace (`app:category:5`) |

use crate::error::{Error, ErrorKind};

/// The Redis key of a tag's version: `{app:category:5}:tag` (its own hash slot).
pub(crate) fn tag_key(tag: &str) -> String {
    format!("{{{tag}}}:tag")
}

/// A version as stored under a tag key.
pub(crate) fn version_text(version: u64) -> String {
    format!("{version:016x}")
}

/// A version read from a tag key: `None` for anything that is not 16 lower-case hex digits
/// (foreign data, which matches no entry and is replaced on the next load).
pub(crate) fn parse_version(text: &[u8]) -> Option<u64> {
    if text.len() != 16 || !text.iter().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
        return None;
    }
    u64::from_str_radix(std::str::from_utf8(text).ok()?, 16).ok()
}

/// A fresh random version.
pub(crate) fn new_version() -> u64 {
    rand::random()
}

/// One tag an entry carries, at the version it had when the entry's load began.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stamp<'a> {
    pub(crate) tag: &'a str,
    pub(crate) version: u64,
}

/// Appends the section for `stamps` (nothing for none). Names longer than 65 535 bytes cannot
/// occur: rendered tags are shortened like keys.
pub(crate) fn write_section(out: &mut Vec<u8>, stamps: &[Stamp<'_>]) -> Result<(), Error> {
    if stamps.is_empty() {
        return Ok(());
    }
    let count = u8::try_from(stamps.len())
        .map_err(|_| Error::new(ErrorKind::Codec, "an entry carries at most 255 tags"))?;
    out.push(count);
    for stamp in stamps {
        let len = u16::try_from(stamp.tag.len())
            .map_err(|_| Error::new(ErrorKind::Codec, "tag name longer than 65535 bytes"))?;
        out.extend_from_slice(&stamp.version.to_le_bytes());
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(stamp.tag.as_bytes());
    }
    Ok(())
}

/// The stamps of a section at the start of `bytes`, and what follows it (the payload).
pub(crate) fn read_section(bytes: &[u8]) -> Result<(Stamps<'_>, &[u8]), Error> {
    let bad = || Error::new(ErrorKind::Codec, "malformed tag section");
    let (&count, mut rest) = bytes.split_first().ok_or_else(bad)?;
    let start = rest;
    for _ in 0..count {
        let (fixed, after) = rest.split_first_chunk::<10>().ok_or_else(bad)?;
        let len = usize::from(u16::from_le_bytes([fixed[8], fixed[9]]));
        if after.len() < len || std::str::from_utf8(&after[..len]).is_err() {
            return Err(bad());
        }
        rest = &after[len..];
    }
    let section = &start[..start.len() - rest.len()];
    Ok((
        Stamps {
            left: count,
            bytes: section,
        },
        rest,
    ))
}

/// The tags of an entry (checked well-formed by [`read_section`]), in the order written.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Stamps<'a> {
    left: u8,
    bytes: &'a [u8],
}

impl<'a> Iterator for Stamps<'a> {
    type Item = Stamp<'a>;

    fn next(&mut self) -> Option<Stamp<'a>> {
        if self.left == 0 {
            return None;
        }
        let (fixed, after) = self.bytes.split_first_chunk::<10>()?;
        let version = u64::from_le_bytes(fixed[..8].try_into().ok()?);
        let len = usize::from(u16::from_le_bytes([fixed[8], fixed[9]]));
        let tag = std::str::from_utf8(after.get(..len)?).ok()?;
        self.bytes = &after[len..];
        self.left -= 1;
        Some(Stamp { tag, version })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sections_round_trip() {
        let stamps = [
            Stamp {
                tag: "app:category:5",
                version: 7,
            },
            Stamp {
                tag: "app:products",
                version: u64::MAX,
            },
        ];
        let mut out = Vec::new();
        write_section(&mut out, &stamps).unwrap();
        out.extend_from_slice(b"payload");
        let (read, rest) = read_section(&out).unwrap();
        assert_eq!(read.collect::<Vec<_>>(), stamps);
        assert_eq!(rest, b"payload");
    }

    #[test]
    fn malformed_sections_are_errors() {
        for bytes in [
            &b""[..],
            b"\x01",
            b"\x01\0\0\0\0\0\0\0\0\x05\0abc",
            b"\x01\0\0\0\0\0\0\0\0\x02\0\xff\xfe",
        ] {
            assert!(read_section(bytes).is_err(), "{bytes:?}");
        }
    }

    #[test]
    fn versions() {
        let v = new_version();
        assert_eq!(parse_version(version_text(v).as_bytes()), Some(v));
        assert_eq!(parse_version(b"0123456789abcdeF"), None);
        assert_eq!(parse_version(b"123"), None);
        assert_eq!(tag_key("app:category:5"), "{app:category:5}:tag");
    }
}

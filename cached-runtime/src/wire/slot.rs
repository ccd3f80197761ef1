//! Redis Cluster hash slots: CRC16 (XMODEM) of the key, or of its hash tag (the bytes between
//! the first `{` and the next `}`, if any), modulo 16384. Key parts are escaped so that a value
//! never forms a hash tag; the cache's own lease keys use one (`{app:user:42}:lock`) to share
//! their entry's slot.

/// Slots of a cluster.
pub(crate) const SLOTS: u16 = 16384;

/// CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0), a byte at a time.
const TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = (i as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ TABLE[usize::from((crc >> 8) as u8 ^ b)]
    })
}

/// The part of `key` that is hashed: its hash tag if it has a non-empty one, else all of it.
fn hashed(key: &[u8]) -> &[u8] {
    if let Some(open) = key.iter().position(|&b| b == b'{') {
        let rest = &key[open + 1..];
        if let Some(len) = rest.iter().position(|&b| b == b'}')
            && len > 0
        {
            return &rest[..len];
        }
    }
    key
}

/// The slot of `key`.
pub(crate) fn of(key: &[u8]) -> u16 {
    crc16(hashed(key)) % SLOTS
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn known_slots() {
        // As `CLUSTER KEYSLOT` gives them.
        assert_eq!(of(b"foo"), 12182);
        assert_eq!(of(b"bar"), 5061);
        assert_eq!(of(b"hello"), 866);
        assert_eq!(of(b"123456789"), 0x31C3 % SLOTS);
    }

    #[test]
    fn hash_tags() {
        assert_eq!(of(b"{user1000}.following"), of(b"user1000"));
        assert_eq!(of(b"{app:user:42}:lock"), of(b"app:user:42"));
        // An empty tag hashes the whole key; only the first `{` counts.
        assert_eq!(of(b"{}x"), crc16(b"{}x") % SLOTS);
        assert_eq!(of(b"a{b}{c}"), of(b"b"));
        assert_eq!(of(b"a{{b}c"), of(b"{b"));
        assert_eq!(of(b"a{b"), crc16(b"a{b") % SLOTS);
    }
}

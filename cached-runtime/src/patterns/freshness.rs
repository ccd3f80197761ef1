//! Whether a cached value is fresh, due for an early refresh (XFetch), stale but servable,
//! expired and kept only for fail-safe, or gone (under sliding expiration).

use super::value::unix_ms;
use crate::{policy::Policy, wire::codec::Meta};

pub(crate) enum Freshness {
    Fresh,
    /// Fresh, but XFetch picked this call to refresh it early.
    RefreshEarly,
    /// Past expiry, within `stale`.
    Stale,
    /// Past expiry and `stale`; kept only for `fail_safe`.
    Expired,
    /// Past expiry with nothing to stand in for: a miss (a sliding site's null marker after
    /// `null_ttl`).
    Gone,
}

pub(crate) fn freshness(site: &Policy, meta: Meta, null: bool) -> Freshness {
    if site.sliding {
        return sliding(meta, null);
    }
    if null || meta.expires_at_ms == 0 {
        return Freshness::Fresh;
    }
    let now = unix_ms();
    if now < meta.expires_at_ms {
        // XFetch (Vattani et al., VLDB 2015): refresh when now - Δ·β·ln(U) ≥ expiry, U ∈ (0, 1].
        if site.early_beta > 0.0 {
            let u: f64 = 1.0 - rand::random::<f64>();
            let ahead = f64::from(meta.load_ms) * site.early_beta * -u.ln();
            if now as f64 + ahead >= meta.expires_at_ms as f64 {
                return Freshness::RefreshEarly;
            }
        }
        return Freshness::Fresh;
    }
    if now < meta.expires_at_ms.saturating_add(site.stale_ms) {
        Freshness::Stale
    } else {
        Freshness::Expired
    }
}

/// Under sliding expiration a value is fresh while Redis has it (its TTL is reset by every
/// hit; a value stored by a site without `sliding` under the same key is read alike, its
/// logical expiry ignored). A null marker is not: its hits reset the key's TTL too, but it is
/// served only until its logical expiry, `null_ttl` after it was stored, so that an absent
/// row is looked up again however often it is asked for.
fn sliding(meta: Meta, null: bool) -> Freshness {
    if null && meta.expires_at_ms != 0 && unix_ms() >= meta.expires_at_ms {
        Freshness::Gone
    } else {
        Freshness::Fresh
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::policy::Site;
    use crate::{
        cache::Ttls,
        patterns::{
            shape::{Plain, ops},
            value::Hit,
        },
        wire::codec::CodecKind,
    };

    static SLIDING: Policy = {
        static SITE: Site = Site::new("tests::sliding");
        Policy::new(&SITE, 60, 1).sliding()
    };

    /// What a sliding site stores for `result`, decoded back: its header's expiry and whether
    /// it is a null marker.
    fn stored(result: Option<u64>) -> (Meta, bool) {
        let ops = ops::<Option<u64>, _>(Plain, None);
        let ttls = Ttls {
            ttl: Duration::from_secs(60),
            null_ttl: Duration::from_millis(1),
            extra: Duration::ZERO,
            sliding: true,
        };
        let encoded = (ops.encode)(CodecKind::Bincode, &result, Duration::ZERO, ttls, &[]).unwrap();
        let bytes = encoded.bytes.unwrap();
        match (ops.decode)(CodecKind::Bincode, &bytes, usize::MAX).unwrap() {
            Hit::Value(_, meta) => (meta, false),
            Hit::Null(_, meta) => (meta, true),
        }
    }

    #[test]
    fn a_sliding_value_has_no_logical_expiry_and_a_sliding_null_keeps_its_own() {
        let (meta, null) = stored(Some(7));
        assert!(!null);
        assert_eq!(meta.expires_at_ms, 0, "Redis's TTL is its only expiry");
        assert!(matches!(freshness(&SLIDING, meta, null), Freshness::Fresh));

        let (meta, null) = stored(None);
        assert!(null);
        assert_ne!(meta.expires_at_ms, 0, "a null marker keeps null_ttl");
        std::thread::sleep(Duration::from_millis(5));
        assert!(matches!(freshness(&SLIDING, meta, null), Freshness::Gone));

        // A value stored by a site without `sliding` is fresh for a sliding one while Redis
        // has it, past its logical expiry too.
        let fixed = Meta {
            load_ms: 0,
            expires_at_ms: 1,
        };
        assert!(matches!(
            freshness(&SLIDING, fixed, false),
            Freshness::Fresh
        ));
    }
}

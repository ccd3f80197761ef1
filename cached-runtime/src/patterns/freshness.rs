//! Whether a cached value is fresh, due for an early refresh (XFetch), stale but servable,
//! or expired and kept only for fail-safe.

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
}

pub(crate) fn freshness(site: &Policy, meta: Meta, null: bool) -> Freshness {
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
    if now < meta.expires_at_ms + site.stale_secs * 1000 {
        Freshness::Stale
    } else {
        Freshness::Expired
    }
}

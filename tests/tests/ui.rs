//! Compile-time behaviour of `#[cache_aside]` and `#[invalidates]`: every misuse is an error
//! at the offending token with a message that says what to write instead
//! (`ui/fail/<category>/*.rs` + `.stderr`), and every supported form compiles (`ui/pass`).
//!
//! Regenerate the expected output with `TRYBUILD=overwrite cargo test -p tests --test ui`
//! and review the `.stderr` diff; the toolchain is pinned so the output is stable.

#[test]
fn ui() {
    let t = trybuild::TestCases::new();
    t.compile_fail("ui/fail/*/*.rs");
    t.pass("ui/pass/*.rs");
}

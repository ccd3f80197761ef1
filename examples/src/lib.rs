//! Runnable examples of `cached-runtime`: see `examples/` (`cargo run --example quickstart`).

#!/usr/bin/env bash
# The whole test suite, from a fresh clone: formatting, lints, unit, property and
# integration tests (real server on 127.0.0.1:0, real WebSocket/HTTP clients), and the
# loom models. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== toolchain components"
rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== format"
cargo fmt --all -- --check

echo "== lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== tests"
cargo test --workspace --locked

echo "== loom models"
# Our own cfg (not `loom`): tokio compiles out its net/signal modules under cfg(loom).
RUSTFLAGS="--cfg lockstep_loom" LOOM_MAX_PREEMPTIONS=3 CARGO_TARGET_DIR=target/loom \
    cargo test -p lockstep-actors --release --locked --test loom_outbound

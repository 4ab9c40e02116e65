#!/usr/bin/env bash
# The whole test suite, from a fresh clone: formatting, lints, unit, property, fuzz and
# integration tests (real server on 127.0.0.1:0, real WebSocket/HTTP clients, headless
# Chromium), the authorization matrix, schema-driven API testing with Schemathesis, and
# the loom models. Installs what it needs first.
set -euo pipefail
cd "$(dirname "$0")/.."

echo "== toolchain components"
rustup component add rustfmt clippy >/dev/null 2>&1 || true

echo "== format"
cargo fmt --all -- --check

echo "== lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

echo "== prerequisites"
# tests/browser.rs drives Debian's Chromium through npm playwright-core; each is
# installed only when missing (or, for the npm packages, when the lockfile changed).
apt_packages=()
[ -x /usr/bin/chromium ] || apt_packages+=(chromium)
command -v node >/dev/null 2>&1 || apt_packages+=(nodejs)
# scripts/schemathesis.sh makes a Python virtual environment and uses curl.
python3 -c 'import ensurepip, venv' 2>/dev/null || apt_packages+=(python3-venv)
command -v curl >/dev/null 2>&1 || apt_packages+=(curl)
# tests/cluster*.rs start their own redis-server instances.
command -v redis-server >/dev/null 2>&1 || apt_packages+=(redis-server)
# tests/recording_h264.rs encodes its H.264 clip with ffmpeg (libx264) and reads the
# recording back with ffprobe; the MP4 writer's unit tests use ffprobe too.
command -v ffprobe >/dev/null 2>&1 || apt_packages+=(ffmpeg)
if [ "${#apt_packages[@]}" -gt 0 ]; then
    echo "installing ${apt_packages[*]} (apt)"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi
installed_lock=tests/browser/node_modules/.installed-package-lock.json
if ! cmp -s tests/browser/package-lock.json "$installed_lock"; then
    echo "installing tests/browser npm packages (npm ci)"
    npm ci --prefix tests/browser --no-audit --no-fund --loglevel=error >/dev/null
    cp tests/browser/package-lock.json "$installed_lock"
fi

# The dashboard's chart library is served from web/vendor/ (embedded in the binary, no
# CDN); it must be exactly the npm package web/package-lock.json pins.
installed_web_lock=web/node_modules/.installed-package-lock.json
if ! cmp -s web/package-lock.json "$installed_web_lock"; then
    echo "installing web npm packages (npm ci)"
    npm ci --prefix web --no-audit --no-fund --loglevel=error >/dev/null
    cp web/package-lock.json "$installed_web_lock"
fi
for f in uPlot.iife.min.js uPlot.min.css; do
    cmp -s "web/node_modules/uplot/dist/$f" "web/vendor/$f" \
        || { echo "web/vendor/$f differs from the pinned npm uplot (npm run --prefix web vendor)"; exit 1; }
done

# tests/browser.rs's automatic-layer test watches with an aiortc WHEP player (PyPI,
# pinned in tests/whep_player/requirements.txt).
source scripts/venv.sh
venv_install target/whep-player-venv tests/whep_player/requirements.txt "the aiortc WHEP player"

echo "== tests"
cargo test --workspace --locked

echo "== schema-driven API testing (Schemathesis)"
./scripts/schemathesis.sh

echo "== loom models"
# Our own cfg (not `loom`): tokio compiles out its net/signal modules under cfg(loom).
# A debug build: the models run in ~5 s, and building them takes ~1 min against ~2.5 min
# for --release (the changed RUSTFLAGS rebuild every dependency in its own target dir).
RUSTFLAGS="--cfg lockstep_loom" LOOM_MAX_PREEMPTIONS=3 CARGO_TARGET_DIR=target/loom \
    cargo test -p lockstep-actors --locked --test loom_outbound

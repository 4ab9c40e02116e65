#!/usr/bin/env bash
# Schema-driven API testing: Schemathesis (PyPI, pinned in
# tests/schemathesis/requirements.txt, installed into target/schemathesis-venv) runs
# every operation of /api/v1/openapi.json against a real server with a merchant token:
# no 5xx, only documented status codes, content types, response schemas and headers.
# The server is seeded first (a flash sale with orders, by the load generator) so
# operations that take an id also get a real one.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
# The same build as the tests (so nothing is rebuilt): the binaries included.
cargo build --locked -q --workspace --all-targets
venv=target/schemathesis-venv
source scripts/venv.sh
venv_install "$venv" tests/schemathesis/requirements.txt Schemathesis

work=$(mktemp -d)
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
LOCKSTEP_STORE__PATH="$work/st.db" LOCKSTEP_ARCHIVE__PATH="$work/archive.db" \
    LOCKSTEP_MEDIA__RECORDING_DIR="$work/recordings" LOCKSTEP_SERVER__LOG=warn \
    target/debug/lockstep serve --bind "127.0.0.1:$port" >"$work/server.log" 2>&1 &
server=$!
trap 'kill $server 2>/dev/null || true; wait $server 2>/dev/null || true; rm -rf "$work"' EXIT
for _ in $(seq 100); do
    curl -sf "127.0.0.1:$port/readyz" >/dev/null && break
    sleep 0.1
done

# Seed: a flash sale with orders (its merchant is the load generator's).
target/debug/lockstep-load flash-sale --server "127.0.0.1:$port" --room st --buyers 20 --stock 10 --limit 1 \
    >"$work/seed.log" 2>&1 || { cat "$work/seed.log"; exit 1; }
token=$(target/debug/lockstep token --role merchant --merchant load-merchant)
api() { curl -sf -H "Authorization: Bearer $token" "127.0.0.1:$port$1"; }
field() { python3 -c "import json,sys; d=json.load(sys.stdin); print(eval(sys.argv[1]))" "$1"; }
export ST_ORDER ST_SALE ST_SKU ST_PRODUCT
ST_ORDER=$(api /api/v1/orders | field 'd["orders"][0]["id"]')
ST_SALE=$(api "/api/v1/orders/$ST_ORDER" | field 'd["sale_id"]')
ST_SKU=$(api "/api/v1/sales/$ST_SALE" | field 'd["sale"]["sku_id"]')
ST_PRODUCT=$(api "/api/v1/sales/$ST_SALE" | field 'd["sale"]["product_id"]')
echo "seeded: sale $ST_SALE, order $ST_ORDER"

"$venv/bin/schemathesis" --config-file tests/schemathesis/schemathesis.toml run \
    "http://127.0.0.1:$port/api/v1/openapi.json" --url "http://127.0.0.1:$port" \
    -H "Authorization: Bearer $token" \
    --checks not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance,response_headers_conformance \
    --max-examples "${SCHEMATHESIS_EXAMPLES:-50}" --seed "${SCHEMATHESIS_SEED:-42}" \
    --generation-database none --workers 1 --no-color \
    --report junit --report-dir "$root/target/schemathesis-report"

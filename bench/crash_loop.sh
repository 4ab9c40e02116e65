#!/usr/bin/env bash
# The kill -9 durability test as a loop (not part of CI): the real server binary takes a
# buying storm and is killed with SIGKILL at a random moment ROUNDS times (default 20),
# restarted on the same database each time; after every kill, every order a buyer saw
# accepted must be in the database file, and after every restart every unit of the sale
# is accounted for (tests/crash.rs, `acked_orders_survive_kill_9_at_random_points`).
#
#   bench/crash_loop.sh [ROUNDS]
set -euo pipefail
cd "$(dirname "$0")/.."
rounds="${1:-20}"
CRASH_ROUNDS="$rounds" cargo test --locked --test crash \
    acked_orders_survive_kill_9_at_random_points -- --nocapture 2>&1 |
    grep -E "^round|test result|panicked|lost" 

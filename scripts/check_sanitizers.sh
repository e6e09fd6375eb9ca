#!/usr/bin/env bash
# Rebuilds the extension with AddressSanitizer + UndefinedBehaviorSanitizer, runs the test suite
# under them (UB aborts), then restores the normal build. Leak checking is off: CPython itself
# "leaks" at exit. Usage: bash scripts/check_sanitizers.sh [pytest args]
set -euo pipefail
cd "$(dirname "$0")/.."
restore() { python ext/build.py >/dev/null; }
trap restore EXIT
KNNSQL_CFLAGS="-fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined -O1 -g" \
    python ext/build.py >/dev/null
LD_PRELOAD="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)" \
ASAN_OPTIONS=detect_leaks=0 python -m pytest -q -p no:cacheprovider -k "not cli" tests "$@"

#!/usr/bin/env bash
# Sanitizer target. Builds tests/core/core_driver.c with the whole C core under AddressSanitizer +
# UndefinedBehaviorSanitizer + LeakSanitizer and runs it (any report fails); with --sql it then also
# runs the SQL/Python suite against an ASan+UBSan build of the extension (scripts/check_sanitizers.sh;
# no leak checking there, as DuckDB and CPython are not sanitized).
#
#   bash scripts/sanitize.sh            # C driver only (~20 s; what CI runs)
#   bash scripts/sanitize.sh --sql [-k expr]   # plus the pytest suite under ASan+UBSan
#
# Needs a compiler with the sanitizer runtimes (gcc's libasan/libubsan/liblsan or clang's
# compiler-rt). If none is found it says so and exits 0 with "SKIPPED", so CI output shows it.
set -euo pipefail
cd "$(dirname "$0")/.."
CC="${CC:-cc}"
flags=(-std=c11 -D_POSIX_C_SOURCE=200809L -O1 -g -fno-omit-frame-pointer
       -fsanitize=address,undefined,leak -fno-sanitize-recover=undefined -Wall -Wextra -Iext/core)
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
if ! echo 'int main(void){return 0;}' | "$CC" "${flags[@]}" -x c - -o "$out/probe" 2>/dev/null || ! "$out/probe"; then
    echo "sanitize: SKIPPED: $CC cannot build or run -fsanitize=address,undefined,leak binaries" \
         "(install gcc's libasan/libubsan/liblsan or clang's compiler-rt)" >&2
    exit 0
fi
mapfile -t core < <(find ext/core -name '*.c' | sort)
"$CC" "${flags[@]}" tests/core/core_driver.c "${core[@]}" -lm -lpthread -o "$out/core_driver"
ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" "$out/core_driver"
# Once more with the filter predicates' portable scan (the SSE2 one is what x86-64 builds use), so the
# path other CPUs take is checked against the same reference: only the predicate tests run.
"$CC" "${flags[@]}" -DKNN_PREDICATE_SCALAR tests/core/core_driver.c "${core[@]}" -lm -lpthread -o "$out/core_driver_scalar"
ASAN_OPTIONS="detect_leaks=1:abort_on_error=1:strict_string_checks=1" \
UBSAN_OPTIONS="print_stacktrace=1:halt_on_error=1" KNN_DRIVER_ONLY=predicate "$out/core_driver_scalar"
if [ "${1:-}" = "--sql" ]; then
    shift
    bash scripts/check_sanitizers.sh "$@"
fi

#!/usr/bin/env bash
# Runs each coverage-guided fuzzer for a set time and prints executions and crashes per target.
#
#   bash scripts/fuzz.sh [graph_load|predicate|sql|where|all] [seconds per target, default 60]
#
# graph_load: libFuzzer (clang -fsanitize=fuzzer,address,undefined) on fuzz/fuzz_graph_load.c, the
#             byte loader behind knn_index_restore and knnsql.Index.load.
# sql:        atheris on fuzz/fuzz_sql.py, against an extension built by clang with
#             -fsanitize-coverage=inline-8bit-counters,pc-table,trace-cmp so libFuzzer sees the C code's coverage too.
# where:      atheris on fuzz/fuzz_where.py, the Python `where` validator (knnsql._sql.parse_filter) and
#             the statements built around it, against a canary database.
# Seeds come from fuzz/corpus/<target>/ (committed, small); new inputs go to a scratch corpus under
# $FUZZ_WORK (default: a temporary directory), crashes to $FUZZ_WORK/<target>/crash-*.
# Needs clang with compiler-rt (Debian: apt-get install clang libclang-rt-14-dev) and atheris.
set -euo pipefail
cd "$(dirname "$0")/.."
target="${1:-all}"
secs="${2:-60}"
work="${FUZZ_WORK:-$(mktemp -d)}"
CLANG="${CLANG:-clang}"
PY="${PYTHON:-python}"
if ! command -v "$CLANG" >/dev/null; then
    echo "fuzz: clang not found (apt-get install clang libclang-rt-14-dev)" >&2
    exit 2
fi
mkdir -p "$work"

fresh() { # target: a clean scratch directory seeded from the committed corpus
    rm -rf "${work:?}/$1"
    mkdir -p "$work/$1/corpus"
    cp fuzz/corpus/"$1"/* "$work/$1/corpus/"
}

report() { # target log
    local execs crashes
    execs=$(grep -o 'stat::number_of_executed_units: [0-9]*' "$2" | tail -1 | awk '{print $2}')
    crashes=$(find "$work/$1" -maxdepth 1 \( -name 'crash-*' -o -name 'leak-*' -o -name 'oom-*' -o -name 'timeout-*' \) | wc -l)
    echo "fuzz: $1: ${execs:-?} executions in ${secs}s, $crashes crash/leak/oom/timeout inputs (log $2)"
}

run_libfuzzer() { # target max_len: a libFuzzer harness fuzz/fuzz_<target>.c over the whole C core
    local dir="$work/$1"
    fresh "$1"
    mapfile -t core < <(find ext/core -name '*.c' | sort)
    "$CLANG" -std=c11 -D_POSIX_C_SOURCE=200809L -O1 -g -fno-omit-frame-pointer \
        -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=undefined -Iext/core \
        "fuzz/fuzz_$1.c" "${core[@]}" -lm -lpthread -o "$dir/fuzz_$1"
    (cd "$dir" && "./fuzz_$1" -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=2048 \
        -max_len="$2" -timeout=20 corpus) >"$dir/log" 2>&1 || true
    report "$1" "$dir/log"
}

run_graph_load() { run_libfuzzer graph_load 65536; }

run_predicate() { run_libfuzzer predicate 8192; }

run_sql() {
    local dir="$work/sql"
    fresh sql
    CC="$CLANG" KNNSQL_CFLAGS="-fsanitize-coverage=inline-8bit-counters,pc-table,trace-cmp -g" \
        "$PY" -c "import sys; sys.path.insert(0, 'ext'); import build; from pathlib import Path; build.build(Path(sys.argv[1]))" \
        "$dir/knnsql.duckdb_extension"
    # A shared libFuzzer preloaded into Python: atheris then drives it ("preloaded libfuzzer" mode) and
    # the extension's coverage hooks resolve to the same copy when DuckDB dlopens it.
    local rt
    rt="$("$CLANG" -print-resource-dir)/lib/linux/libclang_rt.fuzzer_no_main-x86_64.a"
    "$CLANG"++ -shared -fPIC -o "$dir/libfuzzer.so" -Wl,--whole-archive "$rt" -Wl,--no-whole-archive
    (cd "$dir" && LD_PRELOAD="$dir/libfuzzer.so" KNNSQL_FUZZ_EXTENSION="$dir/knnsql.duckdb_extension" PYTHONPATH="$OLDPWD" \
        "$PY" "$OLDPWD/fuzz/fuzz_sql.py" -max_total_time="$secs" -print_final_stats=1 -rss_limit_mb=4096 \
        -timeout=30 corpus) >"$dir/log" 2>&1 || true
    report sql "$dir/log"
}

run_where() {
    # Pure Python (atheris instruments sqlglot and knnsql's filter validator); no clang build needed.
    local dir="$work/where"
    fresh where
    (cd "$dir" && PYTHONPATH="$OLDPWD" "$PY" "$OLDPWD/fuzz/fuzz_where.py" -max_total_time="$secs" \
        -print_final_stats=1 -rss_limit_mb=4096 -timeout=30 corpus) >"$dir/log" 2>&1 || true
    report where "$dir/log"
}

case "$target" in
    graph_load) run_graph_load ;;
    predicate) run_predicate ;;
    sql) run_sql ;;
    where) run_where ;;
    all) run_graph_load; run_predicate; run_sql; run_where ;;
    *) echo "fuzz: unknown target '$target' (graph_load, predicate, sql, where, all)" >&2; exit 2 ;;
esac

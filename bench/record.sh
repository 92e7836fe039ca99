#!/usr/bin/env bash
# The benchmark record (crates/bench-record: its `Record` is the one definition of the format)
# for the shell benchmarks, written with printf alone: no python, no jq. Source it, then
#   bench_quick && ROUNDS=${ROUNDS:-1}      # LAMINA_BENCH_QUICK=1: a brief run
#   record_metric sealed.ms "sealed, total" 114.2 ms
#   record_note "rounds alternate plain and sealed"
#   write_record sealed-sqlite "SQLite on sealed storage" "ROUNDS=7 bench/sealed-sqlite.sh"
# write_record writes <suite>.json into $LAMINA_BENCH_RECORDS when the harness set it, and does
# nothing otherwise. Values are plain decimals (`12`, `0.25`, `-3.5`); one that is not (an empty
# figure, `nan`) is left out with a note, as JSON has no NaN.

RECORD_METRICS=()
RECORD_NOTES=()

# Whether the harness asked for a brief run whose figures are not meant to be read.
bench_quick() { [ "${LAMINA_BENCH_QUICK:-}" = 1 ]; }

# A JSON string, quotes included.
json_string() {
    local s=$1
    s=${s//\\/\\\\}
    s=${s//\"/\\\"}
    s=${s//$'\n'/\\n}
    s=${s//$'\r'/\\r}
    s=${s//$'\t'/\\t}
    printf '"%s"' "$s"
}

# record_metric ID LABEL VALUE UNIT
record_metric() {
    if [[ ! $3 =~ ^-?(0|[1-9][0-9]*)(\.[0-9]+)?$ ]]; then
        record_note "$1: no figure (\`$3\`)"
        return
    fi
    RECORD_METRICS+=("$(printf '    {\n      "id": %s,\n      "label": %s,\n      "value": %s,\n      "unit": %s\n    }' \
        "$(json_string "$1")" "$(json_string "$2")" "$3" "$(json_string "$4")")")
}

# record_note TEXT
record_note() {
    RECORD_NOTES+=("    $(json_string "$1")")
}

# Items joined by ",\n", inside brackets opened on the current line.
json_list() {
    if [ $# -eq 0 ]; then
        printf '[]'
        return
    fi
    local first=1 item
    printf '[\n'
    for item in "$@"; do
        [ $first = 1 ] || printf ',\n'
        printf '%s' "$item"
        first=0
    done
    printf '\n  ]'
}

# write_record SUITE TITLE COMMAND: <suite>.json into $LAMINA_BENCH_RECORDS, when set.
write_record() {
    local dir=${LAMINA_BENCH_RECORDS:-} quick=false
    [ -n "$dir" ] || return 0
    if [[ ! $1 =~ ^[a-z0-9-]+$ ]]; then
        echo "write_record: suite name \`$1\` must be lowercase letters, digits and dashes" >&2
        return 1
    fi
    bench_quick && quick=true
    mkdir -p "$dir"
    {
        printf '{\n'
        printf '  "suite": %s,\n' "$(json_string "$1")"
        printf '  "title": %s,\n' "$(json_string "$2")"
        printf '  "command": %s,\n' "$(json_string "$3")"
        printf '  "quick": %s,\n' "$quick"
        printf '  "metrics": %s,\n' "$(json_list ${RECORD_METRICS[@]+"${RECORD_METRICS[@]}"})"
        printf '  "notes": %s\n' "$(json_list ${RECORD_NOTES[@]+"${RECORD_NOTES[@]}"})"
        printf '}\n'
    } >"$dir/$1.json"
    echo "record: $dir/$1.json" >&2
}

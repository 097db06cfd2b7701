#!/usr/bin/env bash
# Run pytest once per Keras backend and print one summary line per backend.
# Usage: tools/test_all_backends.sh PYTHON; BACKENDS and PYTEST_ARGS from the
# environment. Exits non-zero when any backend fails.
set -u

python="${1:?usage: tools/test_all_backends.sh PYTHON}"
backends="${BACKENDS:-jax torch tensorflow}"
log_dir="$(mktemp -d)"
failed=0
summaries=()

for backend in $backends; do
    echo "=== KERAS_BACKEND=$backend ==="
    start=$(date +%s)
    # shellcheck disable=SC2086
    KERAS_BACKEND="$backend" "$python" -m pytest -q -p no:cacheprovider \
        ${PYTEST_ARGS:-} 2>&1 | tee "$log_dir/$backend.log"
    status=${PIPESTATUS[0]}
    seconds=$(( $(date +%s) - start ))
    result=$(grep -E "^=+ .* in [0-9.]+s" "$log_dir/$backend.log" | tail -1)
    if [ -z "$result" ]; then
        result=$(tail -1 "$log_dir/$backend.log")
    fi
    if [ "$status" -ne 0 ]; then
        failed=1
        summaries+=("$backend: FAILED (exit $status, ${seconds}s) $result")
    else
        summaries+=("$backend: ok (${seconds}s) $result")
    fi
done

echo "=== summary ==="
for line in "${summaries[@]}"; do
    echo "$line"
done
exit $failed

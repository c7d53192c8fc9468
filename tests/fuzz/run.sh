#!/usr/bin/env bash
# Builds the libFuzzer targets in build-fuzz/ (clang, ASan + UBSan) and runs each for a
# bounded time, one after the other, on a scratch copy of its committed corpus (so the
# committed seeds stay as make_corpus.py wrote them). Exits nonzero if any target
# crashes, trips a sanitizer or an invariant, leaks, times out or runs out of memory.
#
#   tests/fuzz/run.sh [seconds]               each target for `seconds` (default 60)
#   FUZZ_TARGETS="fuzz_hub" tests/fuzz/run.sh 30   only some targets
#
# Logs land in build-fuzz/test-logs/fuzz/<target>.log; the input that made a target fail
# is kept in build-fuzz/fuzz-artifacts/<target>/. Reproduce it with
#   build-fuzz/tests/fuzz/<target> <that file>
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${1:-60}
dir=build-fuzz
read -r -a targets <<<"${FUZZ_TARGETS:-fuzz_frame_reader fuzz_http_upgrade fuzz_protocol_decoder fuzz_hub}"

if [ ! -f "$dir/build.ninja" ]; then
  cmake -S . -B "$dir" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_COMPILER=clang++ \
    -DROOMCAST_WERROR=ON -DROOMCAST_SANITIZE=address -DROOMCAST_FUZZ=ON
fi
cmake --build "$dir" --target fuzz_targets

# abort_on_error would bypass libFuzzer's crash handling (and its reproducer file).
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=0
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
logs=$dir/test-logs/fuzz
scratch=$(mktemp -d "${TMPDIR:-/tmp}/roomcast-fuzz-corpus.XXXXXX")
trap 'rm -rf "$scratch"' EXIT
mkdir -p "$logs"

failed=()
for target in "${targets[@]}"; do
  artifacts=$dir/fuzz-artifacts/$target
  mkdir -p "$scratch/$target" "$artifacts"
  cp tests/fuzz/corpus/"$target"/* "$scratch/$target/"
  args=(-max_total_time="$seconds" -rss_limit_mb=2048 -timeout=10 -print_final_stats=1
    -artifact_prefix="$artifacts/")
  [ -f "tests/fuzz/$target.dict" ] && args+=(-dict="tests/fuzz/$target.dict")
  echo "=== fuzz: $target for ${seconds}s"
  if "$dir/tests/fuzz/$target" "${args[@]}" "$scratch/$target" >"$logs/$target.log" 2>&1; then
    status=ok
  else
    status=FAILED
    failed+=("$target")
    grep -E "ERROR|invariant violated|runtime error|SUMMARY|Test unit written" \
      "$logs/$target.log" || true
  fi
  # One line per target: the last coverage report and the final speed.
  progress=$(grep -E '^#[0-9]+' "$logs/$target.log" | tail -n 1 || true)
  speed=$(grep -E '^stat::average_exec_per_sec' "$logs/$target.log" | awk '{print $2}' || true)
  echo "$target: $status; ${speed:-?} exec/s; ${progress:-no progress line}"
done

if ((${#failed[@]})); then
  echo "fuzz: FAILED: ${failed[*]} (logs in $logs, inputs in $dir/fuzz-artifacts)"
  exit 1
fi
echo "fuzz: all targets ran ${seconds}s without a finding"

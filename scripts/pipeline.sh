#!/usr/bin/env bash
# The whole pipeline as one shell pipe, for cron:
#   download-s3 | prep-data | train | eval-model --min-accuracy X | upload-s3
#
# Usage: scripts/pipeline.sh [--config FILE] [--csv URI] [--work DIR] [--min-accuracy X] [--log FILE] [-- train flags...]
#   cron:  15 3 * * *  cd /srv/imgpipe && scripts/pipeline.sh --config config.yaml --min-accuracy 0.9
#
# A lock (flock on WORK/.pipeline.lock) keeps two runs from overlapping; everything the stages print on
# stderr goes to the log file (default WORK/pipeline.log). Exit codes name the stage that failed:
#   0 ok, 10 download-s3, 11 prep-data, 12 train, 13 eval-model (incl. the --min-accuracy gate),
#   14 upload-s3, 2 bad usage, 75 another run holds the lock.
set -euo pipefail

work=pipeline-work
config=""
csv=""
min_accuracy=""
log=""
train_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --config) config="$2"; shift 2 ;;
    --csv) csv="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --min-accuracy) min_accuracy="$2"; shift 2 ;;
    --log) log="$2"; shift 2 ;;
    --) shift; train_args=("$@"); break ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "pipeline.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done

here="$(cd "$(dirname "$0")/.." && pwd)"
bin="$here/node_modules/.bin"
mkdir -p "$work"
log="${log:-$work/pipeline.log}"

exec 9>"$work/.pipeline.lock"
if ! flock -n 9; then
  echo "pipeline.sh: another run holds $work/.pipeline.lock; not starting" >&2
  exit 75
fi

common=()
[[ -n "$config" ]] && common+=(--config "$config")
csv_args=()
[[ -n "$csv" ]] && csv_args+=(--csv "$csv")
gate=()
[[ -n "$min_accuracy" ]] && gate+=(--min-accuracy "$min_accuracy")

echo "pipeline.sh: run started $(date -u +%FT%TZ), logging to $log" >&2
{
  echo "== $(date -u +%FT%TZ) pipeline start (pid $$)"
} >>"$log"

set +e
"$bin/download-s3" "${common[@]}" "${csv_args[@]}" --dest "$work/data" 2>>"$log" \
  | "$bin/prep-data" "${common[@]}" --out "$work/prep" 2>>"$log" \
  | "$bin/train" "${common[@]}" --out "$work/runs" "${train_args[@]}" 2>>"$log" \
  | "$bin/eval-model" "${common[@]}" "${gate[@]}" 2>>"$log" \
  | "$bin/upload-s3" "${common[@]}" 2>>"$log" >"$work/last-upload.json"
codes=("${PIPESTATUS[@]}")
set -e

stages=(download-s3 prep-data train eval-model upload-s3)
for i in "${!codes[@]}"; do
  if [[ "${codes[$i]}" -ne 0 ]]; then
    echo "== $(date -u +%FT%TZ) ${stages[$i]} failed with exit ${codes[$i]}" >>"$log"
    echo "pipeline.sh: ${stages[$i]} failed (exit ${codes[$i]}); see $log" >&2
    exit $((10 + i))
  fi
done
echo "== $(date -u +%FT%TZ) pipeline done: $(cat "$work/last-upload.json")" >>"$log"
echo "pipeline.sh: done; uploaded: $(cat "$work/last-upload.json")" >&2

#!/usr/bin/env bash
# The whole pipeline as one shell pipe, for cron:
#   download-s3 | prep-data | train | eval-model [--min-accuracy X] | upload-s3
#
# Usage: scripts/pipeline.sh [--config FILE] [--csv URI] [--work DIR] [--bucket B] [--prefix P]
#                            [--min-accuracy X] [--max-failures N] [--log FILE] [-- train flags...]
#   cron:  15 3 * * *  cd /srv/imgpipe && scripts/pipeline.sh --config config.yaml --min-accuracy 0.9
#
# Under --work (default pipeline-work/): data/ (images), prep/ (dataset), runs/ (one run per day), pipeline.log,
# last-upload.json (upload-s3's pointer: the s3:// URIs; written only when every stage succeeded), logs/ (each
# stage's stderr of the last run).
# Nothing is published unless every stage before upload-s3 exited 0: a download with failed rows stops the run
# (prep-data refuses the CSV download-s3 marks incomplete); --max-failures N (download-s3's flag) accepts up to
# N images that could not be downloaded, and the model is then trained and published without them.
# A lock (flock on WORK/.pipeline.lock) keeps two runs from overlapping; everything the stages print on stderr
# goes to the log file (default WORK/pipeline.log). SIGINT/SIGTERM stop every stage; an interrupted train is
# finished by the next run (train resumes an unfinished run of the same command). Exit codes name the stage:
#   0 ok, 10 download-s3, 11 prep-data, 12 train, 13 eval-model (incl. the --min-accuracy gate: nothing is
#   uploaded), 14 upload-s3, 2 bad usage (incl. a --log or --config that cannot be used), 75 another run holds
#   the lock (EX_TEMPFAIL), 130/143 interrupted.
set -euo pipefail

args=("$@")
work=pipeline-work
config=""
csv=""
bucket=""
prefix=""
min_accuracy=""
max_failures=""
log=""
train_args=()
while [[ $# -gt 0 ]]; do
  case "$1" in
    --config|--csv|--work|--bucket|--prefix|--min-accuracy|--max-failures|--log)
      [[ $# -ge 2 ]] || { echo "pipeline.sh: $1 needs a value (see --help)" >&2; exit 2; } ;;&
    --config) config="$2"; shift 2 ;;
    --csv) csv="$2"; shift 2 ;;
    --work) work="$2"; shift 2 ;;
    --bucket) bucket="$2"; shift 2 ;;
    --prefix) prefix="$2"; shift 2 ;;
    --min-accuracy) min_accuracy="$2"; shift 2 ;;
    --max-failures) max_failures="$2"; shift 2 ;;
    --log) log="$2"; shift 2 ;;
    --) shift; train_args=("$@"); break ;;
    -h|--help) sed -n '2,20p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "pipeline.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
done
if [[ -n "$config" && ! -f "$config" ]]; then echo "pipeline.sh: --config $config: no such file" >&2; exit 2; fi

here="$(cd "$(dirname "$0")/.." && pwd)"
bin="${IMGPIPE_BIN_DIR:-$here/node_modules/.bin}"
if [[ -n "$max_failures" && ! "$max_failures" =~ ^[0-9]+$ ]]; then
  echo "pipeline.sh: expected --max-failures to be a non-negative integer, got '$max_failures'" >&2; exit 2
fi
if [[ -n "$log" && ! -d "$(dirname -- "$log")" ]]; then
  echo "pipeline.sh: --log $log: directory $(dirname -- "$log") does not exist (create it, or pass another --log)" >&2; exit 2
fi
mkdir -p "$work"
log="${log:-$work/pipeline.log}"
if [[ -e "$log" && ! -w "$log" ]] || [[ ! -e "$log" && ! -w "$(dirname -- "$log")" ]]; then
  echo "pipeline.sh: --log $log: cannot write to it (check its permissions)" >&2; exit 2
fi

# The stages, run by the inner copy of this script in a session of its own (see below).
run_stages() {
  local common=() csv_args=() download_args=() gate=() upload_args=()
  [[ -n "$config" ]] && common+=(--config "$config")
  [[ -n "$csv" ]] && csv_args+=(--csv "$csv")
  [[ -n "$min_accuracy" ]] && gate+=(--min-accuracy "$min_accuracy")
  [[ -n "$max_failures" ]] && download_args+=(--max-failures "$max_failures")
  [[ -n "$bucket" ]] && upload_args+=(--bucket "$bucket")
  [[ -n "$prefix" ]] && upload_args+=(--prefix "$prefix")
  local result="$work/last-upload.json" logs="$work/logs" evaluated="$work/.evaluated.json"
  local stages=(download-s3 prep-data train eval-model upload-s3)
  mkdir -p "$logs"
  # Each stage's stderr goes to its own file (tail -f it while it runs), appended to the log when the pipe ends.
  local err=()
  for i in "${!stages[@]}"; do err+=("$logs/$((i + 1))-${stages[$i]}.log"); done
  # The stages up to eval-model run as one pipe; upload-s3, the stage that publishes, starts only when all of
  # them exited 0 (it could not start earlier anyway: it needs eval-model's pointer line). A stage that failed
  # after streaming part of its output cannot be seen from inside the pipe, so its exit status decides here.
  set +e
  "$bin/download-s3" "${common[@]}" "${csv_args[@]}" "${download_args[@]}" --dest "$work/data" 2>"${err[0]}" </dev/null \
    | "$bin/prep-data" "${common[@]}" --out "$work/prep" 2>"${err[1]}" \
    | "$bin/train" "${common[@]}" --out "$work/runs" "${train_args[@]}" 2>"${err[2]}" \
    | "$bin/eval-model" "${common[@]}" "${gate[@]}" 2>"${err[3]}" >"$evaluated"
  local codes=("${PIPESTATUS[@]}")
  if [[ "${codes[*]}" == "0 0 0 0" ]]; then
    "$bin/upload-s3" "${common[@]}" "${upload_args[@]}" 2>"${err[4]}" <"$evaluated" >"$result.tmp"
    codes+=($?)
  else
    echo "upload-s3: not started: an earlier stage failed" >"${err[4]}"
    codes+=(-)
  fi
  rm -f "$evaluated"
  set -e
  for i in "${!stages[@]}"; do
    { echo "-- ${stages[$i]} (exit ${codes[$i]})"; cat "${err[$i]}"; } >>"$log"
  done
  # The stage that failed first: a stage whose reader died (EPIPE, SIGPIPE) and a stage whose writer died (no
  # input) fail too, so prefer a failed stage that neither lost its reader nor got cut off from its input.
  local failed=-1
  for i in "${!codes[@]}"; do
    [[ "${codes[$i]}" != 0 && "${codes[$i]}" != - ]] || continue
    [[ $failed -ge 0 ]] || failed=$i
    if [[ "${codes[$i]}" != 141 ]] && ! grep -q 'EPIPE' "${err[$i]}" \
      && ! { [[ $i -gt 0 && "${codes[$((i - 1))]}" != 0 ]] && grep -q 'got nothing\|no input\|empty\|incomplete' "${err[$i]}"; }; then
      failed=$i
      break
    fi
  done
  if [[ $failed -ge 0 ]]; then
    rm -f "$result.tmp"
    echo "== $(date -u +%FT%TZ) ${stages[$failed]} failed with exit ${codes[$failed]}" >>"$log"
    echo "pipeline.sh: ${stages[$failed]} failed (exit ${codes[$failed]}): $(grep "^${stages[$failed]}: " "${err[$failed]}" | tail -1); see $log" >&2
    return $((10 + failed))
  fi
  mv -f "$result.tmp" "$result"
  echo "== $(date -u +%FT%TZ) pipeline done: $(cat "$result")" >>"$log"
  echo "pipeline.sh: done; uploaded: $(cat "$result")" >&2
}

if [[ "${IMGPIPE_PIPELINE_INNER:-}" == 1 ]]; then
  run_stages
  exit
fi

exec 9>"$work/.pipeline.lock"
if ! flock -n 9; then
  echo "pipeline.sh: another run holds $work/.pipeline.lock; not starting" >&2
  exit 75
fi

echo "pipeline.sh: run started $(date -u +%FT%TZ), logging to $log" >&2
echo "== $(date -u +%FT%TZ) pipeline start (pid $$)" >>"$log"

# The stages run in their own session, so that a signal to this script (cron's kill, systemd stop, Ctrl-C)
# reaches every stage at once: bash would otherwise only act on it after the pipe ends. The stages inherit the
# lock's descriptor, so even stages that outlive this script keep a new run from starting.
IMGPIPE_PIPELINE_INNER=1 setsid "$0" "${args[@]}" &
inner=$!
stop() {
  local signal="$1" code="$2"
  echo "== $(date -u +%FT%TZ) interrupted by SIG$signal; stopping the stages" >>"$log"
  echo "pipeline.sh: SIG$signal: stopping the stages" >&2
  kill -TERM -- "-$inner" 2>/dev/null || true
  wait "$inner" 2>/dev/null || true
  # The stages may take a moment to stop (a tool finishing its atomic rename); SIGKILL after 20 s.
  local waited=0
  while kill -0 -- "-$inner" 2>/dev/null; do
    if [[ $waited -ge 200 ]]; then kill -KILL -- "-$inner" 2>/dev/null || true; fi
    sleep 0.1
    waited=$((waited + 1))
  done
  rm -f "$work/last-upload.json.tmp"
  exit "$code"
}
trap 'stop INT 130' INT
trap 'stop TERM 143' TERM
trap 'stop HUP 129' HUP
set +e
wait "$inner"
status=$?
exit "$status"

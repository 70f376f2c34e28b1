#!/usr/bin/env bash
# Run a train sweep on Slurm: plans the run here (train --task plan), then submits
#   extraction   a job array, one task per shard          train --task extract --index $SLURM_ARRAY_TASK_ID
#   trials       a job array after it (afterok)            train --task trial --index $SLURM_ARRAY_TASK_ID
#   finish       after the trials                          train --task finish
#   eval         after finish                              eval-model --run RUN
# and prints {"kind":"slurm-sweep","path":RUN,"jobs":{...}} on stdout. Logs: RUN/slurm/logs/<task>-<index>.log.
#
# Usage: deploy/slurm/submit-sweep.sh --data DIR [--out DIR] [--run-id ID] [--shards N] [--gpus N] [train sweep flags...]
#   --data DIR     the dataset (prep-data --out), on a filesystem every node sees
#   --out DIR      parent of the run directory (default runs/), shared as well
#   --run-id ID    name of the run directory (default: a new timestamped one)
#   --shards N     extraction tasks (default 4)
#   --gpus N       GPUs per task when --device cuda (default 1): sbatch --gres=gpu:N
#   other flags go to train --task plan (--lr, --layer-size, --epochs, --backbone, --device, --config, ...);
#   --device and --config also go to eval-model.
# Environment: IMGPIPE_BIN (directory with the train and eval-model bins; default <repo>/node_modules/.bin),
#   IMGPIPE_SBATCH_ARGS (flags for every sbatch, e.g. "--partition gpu --time 02:00:00 --cpus-per-task 4").
# A failed task is resubmitted alone with deploy/slurm/resubmit.sh RUN trial K (see there).
set -euo pipefail
source "$(dirname "$0")/lib.sh"

DATA="" OUT="runs/" RUN_ID="" SHARDS=4 GPUS=1 DEVICE=""
PLAN_FLAGS=() EVAL_FLAGS=()
while (($#)); do
  case $1 in
    --data) DATA=${2:?--data needs a directory}; shift 2 ;;
    --out) OUT=${2:?--out needs a directory}; shift 2 ;;
    --run-id) RUN_ID=${2:?--run-id needs a name}; shift 2 ;;
    --shards) SHARDS=${2:?--shards needs a number}; shift 2 ;;
    --gpus) GPUS=${2:?--gpus needs a number}; shift 2 ;;
    --device | --config) PLAN_FLAGS+=("$1" "${2:?$1 needs a value}"); EVAL_FLAGS+=("$1" "$2"); [[ $1 == --device ]] && DEVICE=$2; shift 2 ;;
    --device=* | --config=*) PLAN_FLAGS+=("$1"); EVAL_FLAGS+=("$1"); [[ $1 == --device=* ]] && DEVICE=${1#--device=}; shift ;;
    -h | --help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    *) PLAN_FLAGS+=("$1"); shift ;;
  esac
done
[[ -n $DATA ]] || die "expected --data DIR (the prep-data output directory)"
[[ $GPUS =~ ^[1-9][0-9]*$ ]] || die "expected --gpus to be a positive integer, got '$GPUS'"
command -v sbatch >/dev/null || die "sbatch not found: run this on a Slurm submit host"
BIN=${IMGPIPE_BIN:-$(cd "$SLURM_DIR/../.." && pwd)/node_modules/.bin}
[[ -x $BIN/train ]] || die "no train bin in $BIN (set IMGPIPE_BIN)"
GRES=""
[[ $DEVICE == cuda ]] && GRES="gpu:$GPUS"
SBATCH_ARGS=${IMGPIPE_SBATCH_ARGS:-}

pointer=$("$BIN/train" --task plan --data "$DATA" --out "$OUT" ${RUN_ID:+--run-id "$RUN_ID"} --shards "$SHARDS" "${PLAN_FLAGS[@]}")
RUN=$(pointer_field path <<<"$pointer")
TRIALS=$(pointer_field trials <<<"$pointer")
N_SHARDS=$(pointer_field shards <<<"$pointer")
save_settings "$RUN"

extract=$(submit extract "$RUN" "0-$((N_SHARDS - 1))" "")
rest=$(submit_rest "$RUN" "0-$((TRIALS - 1))" "$extract")
echo "submit-sweep: $RUN: extraction job $extract ($N_SHARDS tasks), then $TRIALS trials, finish and eval; logs in $RUN/slurm/logs" >&2
printf '{"kind":"slurm-sweep","path":"%s","jobs":{"extract":"%s",%s}}\n' "$RUN" "$extract" "$rest"

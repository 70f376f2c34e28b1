#!/usr/bin/env bash
# One task of a planned sweep, as a Slurm job (submitted by submit-sweep.sh and resubmit.sh, not run by hand).
#   task.sh BIN_DIR extract|trial RUN_DIR          (a job array: the index is $SLURM_ARRAY_TASK_ID)
#   task.sh BIN_DIR finish|eval RUN_DIR [eval-model flags...]
# BIN_DIR is passed in because Slurm runs a copy of this script from its spool directory.
set -euo pipefail
bin=$1 task=$2 run=$3
shift 3
echo "imgpipe: $task ${SLURM_ARRAY_TASK_ID:-} of $run on $(hostname), job ${SLURM_JOB_ID:-?}, $(date -u +%FT%TZ)" >&2
case $task in
  extract | trial) exec "$bin/train" --task "$task" --run "$run" --index "$SLURM_ARRAY_TASK_ID" ;;
  finish) exec "$bin/train" --task finish --run "$run" ;;
  eval) exec "$bin/eval-model" --run "$run" "$@" ;;
  *) echo "task.sh: unknown task '$task' (extract, trial, finish or eval)" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# Resubmit failed or cancelled tasks of a sweep submitted with submit-sweep.sh, alone, with the same settings;
# the steps after them (finish and eval, which Slurm cancelled when their dependency failed) follow again.
#   deploy/slurm/resubmit.sh RUN trial K[,K...]     the trials, then finish and eval
#   deploy/slurm/resubmit.sh RUN extract K[,K...]   the shards, then every trial (finished ones return at once), finish, eval
#   deploy/slurm/resubmit.sh RUN finish             finish, then eval
# Which tasks are not done: `train --task finish --run RUN` names them ("trials 2,5 of RUN are not done"); a done
# trial K has RUN/trials/tNNN.json (NNN = K+1), a done shard RUN/features/shard-K.json; logs: RUN/slurm/logs/. Prints {"kind":"slurm-sweep","path":RUN,"jobs":{...}} on stdout.
set -euo pipefail
source "$(dirname "$0")/lib.sh"

(($# >= 2)) || die "usage: resubmit.sh RUN trial|extract K[,K...] | resubmit.sh RUN finish"
RUN=$(cd "$1" && pwd) KIND=$2 INDEXES=${3:-}
load_settings "$RUN"
case $KIND in
  trial | extract) [[ $INDEXES =~ ^[0-9]+([,-][0-9]+)*$ ]] || die "expected K, K,K or K-K after $KIND, got '$INDEXES'" ;;
  finish) ;;
  *) die "expected trial, extract or finish, got '$KIND'" ;;
esac
TRIALS=$(node -p 'JSON.parse(require("fs").readFileSync(process.argv[1], "utf8")).trials.length' "$RUN/plan.json")
case $KIND in
  extract)
    extract=$(submit extract "$RUN" "$INDEXES" "")
    rest=$(submit_rest "$RUN" "0-$((TRIALS - 1))" "$extract") ;;
  trial)
    extract=""
    trials=$(submit trial "$RUN" "$INDEXES" "")
    rest=$(submit_rest "$RUN" "" "$trials")
    rest=${rest/\"trials\":\"\"/\"trials\":\"$trials\"} ;;
  finish)
    extract=""
    rest=$(submit_rest "$RUN" "" "") ;;
esac
echo "resubmit: $KIND ${INDEXES} of $RUN submitted; logs in $RUN/slurm/logs" >&2
printf '{"kind":"slurm-sweep","path":"%s","jobs":{"extract":"%s",%s}}\n' "$RUN" "$extract" "$rest"

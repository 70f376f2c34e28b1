# Shared by submit-sweep.sh and resubmit.sh: how each kind of task is submitted.
# The settings of a sweep (bins, GPU request, extra sbatch flags, eval-model flags) are kept in
# <run>/slurm/settings.sh, so a resubmitted task runs exactly as the first one did.

SLURM_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)

die() {
  echo "$(basename "$0"): $*" >&2
  exit 2
}

# Writes the settings of this sweep into <run>/slurm/settings.sh (atomically).
save_settings() {
  local run=$1 file="$1/slurm/settings.sh"
  mkdir -p "$run/slurm/logs"
  {
    printf 'BIN=%q\n' "$BIN"
    printf 'GRES=%q\n' "$GRES"
    printf 'SBATCH_ARGS=%q\n' "$SBATCH_ARGS"
    printf 'EVAL_FLAGS=('
    local flag
    for flag in "${EVAL_FLAGS[@]}"; do printf '%q ' "$flag"; done
    printf ')\n'
  } > "$file.tmp.$$"
  mv -f "$file.tmp.$$" "$file"
}

load_settings() {
  local file="$1/slurm/settings.sh"
  [[ -f $file ]] || die "$1: no slurm/settings.sh there (was this run submitted with submit-sweep.sh?)"
  # shellcheck source=/dev/null
  source "$file"
}

# submit KIND RUN ARRAY DEPENDENCY -> prints the job id. ARRAY: "" or a Slurm --array spec (0-9, 2, 1,4).
# One log per task: <run>/slurm/logs/KIND-INDEX.log (appended to by a resubmitted task), finish.log, eval.log.
submit() {
  local kind=$1 run=$2 array=$3 dep=$4
  local logs="$run/slurm/logs"
  local args=(--parsable --job-name "imgpipe-$kind" --open-mode append)
  if [[ -n $array ]]; then args+=(--array "$array" --output "$logs/$kind-%a.log"); else args+=(--output "$logs/$kind.log"); fi
  if [[ -n $dep ]]; then args+=(--dependency "afterok:$dep" --kill-on-invalid-dep yes); fi
  if [[ -n $GRES ]]; then args+=(--gres "$GRES"); fi
  # shellcheck disable=SC2206 # IMGPIPE_SBATCH_ARGS is a list of flags, split on spaces on purpose
  local extra=($SBATCH_ARGS)
  local out
  out=$(sbatch "${args[@]}" "${extra[@]}" "$SLURM_DIR/task.sh" "$BIN" "$kind" "$run" "${EVAL_FLAGS[@]}") || die "sbatch failed for the $kind task(s)"
  echo "${out%%;*}"
}

# The jobs after extraction: trials (ARRAY, or none when ""), then finish and eval, each after the one before.
# Prints the job ids as JSON fields.
submit_rest() {
  local run=$1 trials_array=$2 dep=$3 trials=""
  if [[ -n $trials_array ]]; then
    trials=$(submit trial "$run" "$trials_array" "$dep")
    dep=$trials
  fi
  local finish eval
  finish=$(submit finish "$run" "" "$dep")
  eval=$(submit eval "$run" "" "$finish")
  printf '"trials":"%s","finish":"%s","eval":"%s"' "$trials" "$finish" "$eval"
}

# A field of the JSON pointer line on stdin.
pointer_field() {
  node -e 'let t="";process.stdin.on("data",(d)=>(t+=d)).on("end",()=>{const p=JSON.parse(t.trim().split("\n").pop());console.log(p[process.argv[1]])})' "$1"
}

# shellcheck shell=bash
# Command of a runner profile's Fargate task, run as ["bash", "-c", "<this file>"]:
# it must not rely on $0 or on its own path. See runner/README.md for the contract.
#
# 1. Take the JIT config out of the environment (only the runner child gets it).
# 2. Write the policy, policy.py and the job-started hook into $RUNNER_HOME/_hooks.
# 3. Check the policy's required_env; refuse to start (exit 78) if any is missing.
# 4. Start the runner, forward SIGTERM/SIGINT to it, stop it if no job arrives
#    within RUNNER_IDLE_TIMEOUT_SECONDS (then exit 0), else exit with its code.
set -euo pipefail

log() { printf 'entrypoint: %s\n' "$*" >&2; }
die() {
  local code="$1"
  shift
  log "$*"
  exit "$code"
}

readonly EX_CONFIG=78

# --- 1. JIT config: keep it in a non-exported shell variable --------------------
jit_config="${ACTIONS_RUNNER_INPUT_JITCONFIG:-}"
unset ACTIONS_RUNNER_INPUT_JITCONFIG

RUNNER_HOME="${RUNNER_HOME:-/home/runner}"
run_cmd="${RUNNER_RUN_CMD:-$RUNNER_HOME/run.sh}"
idle_timeout="${RUNNER_IDLE_TIMEOUT_SECONDS:-600}"
stop_grace="${RUNNER_STOP_GRACE_SECONDS:-10}"

[[ "$idle_timeout" =~ ^[0-9]+$ ]] ||
  die "$EX_CONFIG" "RUNNER_IDLE_TIMEOUT_SECONDS must be a whole number of seconds, got '$idle_timeout'"
[[ "$stop_grace" =~ ^[0-9]+$ ]] ||
  die "$EX_CONFIG" "RUNNER_STOP_GRACE_SECONDS must be a whole number of seconds, got '$stop_grace'"
idle_timeout=$((10#$idle_timeout))
stop_grace=$((10#$stop_grace))

# --- 2. hook files -------------------------------------------------------------
for name in RUNNER_POLICY_JSON RUNNER_POLICY_PY_GZ_B64 RUNNER_HOOK_PY_GZ_B64; do
  [[ -n "${!name:-}" ]] || die "$EX_CONFIG" "$name is not set; the task definition must provide it"
done

hooks="$RUNNER_HOME/_hooks"
state="$RUNNER_HOME/_state"
marker="$state/job-started"

if [[ -e "$hooks" ]]; then
  chmod -R u+w "$hooks"
  rm -rf "$hooks"
fi
mkdir -p "$hooks" "$state"
rm -f "$marker"

if ! printf '%s' "$RUNNER_POLICY_PY_GZ_B64" | base64 -d 2>/dev/null | gzip -dc >"$hooks/policy.py" 2>/dev/null; then
  die "$EX_CONFIG" "RUNNER_POLICY_PY_GZ_B64 is not valid gzip+base64"
fi
if ! printf '%s' "$RUNNER_HOOK_PY_GZ_B64" | base64 -d 2>/dev/null | gzip -dc >"$hooks/job_started.py" 2>/dev/null; then
  die "$EX_CONFIG" "RUNNER_HOOK_PY_GZ_B64 is not valid gzip+base64"
fi
printf '%s\n' "$RUNNER_POLICY_JSON" >"$hooks/policy.json"

# The runner runs this with `bash -e`. Paths are passed as arguments so a job's
# `env:` cannot point the hook at another policy file.
printf '#!/usr/bin/env bash\n# Written by entrypoint.sh: runner-profile policy check.\nexec python3 %q --policy-file %q --marker %q\n' \
  "$hooks/job_started.py" "$hooks/policy.json" "$marker" >"$hooks/job-started.sh"

# Fargate tasks have no Docker daemon: make job containers, service containers
# and container actions fail with a clear message (the runner calls this
# container hook instead of docker). Kept if the image configures its own.
cat >"$hooks/no-containers.sh" <<'EOF'
#!/usr/bin/env bash
echo "::error::This runner cannot run containers (jobs.<id>.container, services or Docker container actions): Fargate tasks have no Docker daemon."
exit 1
EOF

chmod 0444 "$hooks/policy.py" "$hooks/job_started.py" "$hooks/policy.json"
chmod 0555 "$hooks/job-started.sh" "$hooks/no-containers.sh" "$hooks"

export ACTIONS_RUNNER_HOOK_JOB_STARTED="$hooks/job-started.sh"
export RUNNER_POLICY_FILE="$hooks/policy.json"
export RUNNER_JOB_STARTED_MARKER="$marker"
export ACTIONS_RUNNER_CONTAINER_HOOKS="${ACTIONS_RUNNER_CONTAINER_HOOKS:-$hooks/no-containers.sh}"
# run.sh then traps SIGINT/SIGTERM and stops the listener gracefully.
export RUNNER_MANUALLY_TRAP_SIG="${RUNNER_MANUALLY_TRAP_SIG:-1}"

unset RUNNER_POLICY_JSON RUNNER_POLICY_PY_GZ_B64 RUNNER_HOOK_PY_GZ_B64

# --- 3. policy valid and required_env present (checked in the runner's env) ----
python3 "$hooks/job_started.py" --preflight --policy-file "$hooks/policy.json" || exit "$EX_CONFIG"

[[ -n "$jit_config" ]] ||
  die "$EX_CONFIG" "ACTIONS_RUNNER_INPUT_JITCONFIG is empty; refusing to start a runner without a JIT config"

# --- 4. run, forward signals, idle watchdog ------------------------------------
# setsid gives the runner its own process group (it execs, so $! is the runner's
# pid and process group id): a stop reaches every process it started (run.sh,
# run-helper.sh, Runner.Listener, Runner.Worker, job processes).
runner_pid=""
stop_deadline=""
stop_runner() {
  # $1: reason for the log. SIGTERM to the runner now, SIGKILL after the grace period.
  log "$1"
  if [[ -z "$runner_pid" ]]; then
    exit 143
  fi
  if [[ -z "$stop_deadline" ]]; then
    stop_deadline=$((SECONDS + stop_grace))
    kill -s TERM -- "-$runner_pid" 2>/dev/null || kill -s TERM "$runner_pid" 2>/dev/null || true
  fi
}
trap 'stop_runner "received SIGTERM; stopping the runner"' TERM
trap 'stop_runner "received SIGINT; stopping the runner"' INT

launcher=()
if command -v setsid >/dev/null 2>&1; then
  launcher=(setsid)
fi
ACTIONS_RUNNER_INPUT_JITCONFIG="$jit_config" "${launcher[@]}" "$run_cmd" &
runner_pid=$!
jit_config=""

idle_stop=""
idle_deadline=$((SECONDS + idle_timeout))
while kill -0 "$runner_pid" 2>/dev/null; do
  if [[ -z "$idle_stop" && "$idle_timeout" -gt 0 && ! -e "$marker" && "$SECONDS" -ge "$idle_deadline" ]]; then
    idle_stop=1
    stop_runner "no job arrived within $idle_timeout s; stopping"
  fi
  if [[ -n "$stop_deadline" && "$SECONDS" -ge "$stop_deadline" ]]; then
    log "runner did not stop within $stop_grace s; killing it"
    kill -s KILL -- "-$runner_pid" 2>/dev/null || kill -s KILL "$runner_pid" 2>/dev/null || true
    stop_deadline=$((SECONDS + 3600))
  fi
  sleep 0.5 &
  wait "$!" || true
done

rc=0
wait "$runner_pid" || rc=$?
if [[ -n "$idle_stop" ]]; then
  exit 0
fi
log "runner exited with code $rc"
exit "$rc"

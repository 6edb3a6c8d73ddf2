# shellcheck shell=bash
# Program of a runner profile's Fargate task: the task definition's bootstrap command
# (runner_files.py) checks the shared files and runs this as bash -c "<this file>", so
# it must not rely on $0 or on its own path. See runner/README.md for the contract and
# docs/runner.md for the runner behaviour (actions/runner v2.332.0, the version parts
# re-read at v2.336.0) it is built on.
#
# 1. Fetch this task's JIT config with its own identity (jit_config.py, after the
#    checks) into the runner's files; no JIT config in any environment.
# 2. Write the policy, policy.py, admission_record.py and the job-started hook into
#    $RUNNER_HOME/_hooks. A restricted profile's hook also reads dispatch's admission
#    record of each job (RUNNER_ADMISSION_TABLE; docs/admission.md).
# 3. Check the policy's required_env; refuse to start (exit 78) if any is missing.
# 4. Start run.sh in a session of its own with SIGINT at its default, then watch it:
#    - a job refused by the hook, or a hook with no verdict in time: stop the runner
#      (the Worker then skips every remaining step), exit 77 "refused";
#    - no Runner.Worker within RUNNER_IDLE_TIMEOUT_SECONDS: stop the runner, exit 0;
#    - SIGTERM/SIGINT (ECS StopTask): stop the runner;
#    "stop" = SIGTERM to run.sh, whose trap sends SIGINT to the Listener's process group;
#    whatever is still alive after RUNNER_STOP_GRACE_SECONDS is killed, and nothing of
#    the runner's session outlives this script.
# 5. Runner versions (docs/runner.md, "Runner versions"): log the version of
#    bin/Runner.Listener at start; a self-update at job start (bin becomes a symlink to
#    bin.<new>) is logged once; GitHub refusing the runner's version ends the task with
#    exit 7, which the reconciler does not replace. Each is one JSON line
#    {"runner_event": ..., "profile": ...} that a metric filter counts.
set -euo pipefail

log() { printf 'entrypoint: %s\n' "$*" >&2; }
die() {
  local code="$1"
  shift
  log "$*"
  exit "$code"
}

readonly EX_REFUSED=77 # EX_NOPERM: the job was refused; nothing of it ran after the hook
readonly EX_CONFIG=78
readonly EX_VERSION_REFUSED=7 # the Listener's RunnerVersionDeprecated (v2.333.0+), passed on

runner_event() {
  # $1: event, then key=value pairs (values: versions and profile names, no quotes).
  local line="{\"runner_event\":\"$1\",\"profile\":\"$profile\""
  shift
  local pair
  for pair in "$@"; do
    line+=",\"${pair%%=*}\":\"${pair#*=}\""
  done
  printf '%s}\n' "$line"
}

# --- 1. JIT config: only the name of this task's secret is in the environment ----
# A plaintext config in the environment is refused: DescribeTasks would show it.
[[ -z "${ACTIONS_RUNNER_INPUT_JITCONFIG:-}" ]] ||
  die "$EX_CONFIG" "ACTIONS_RUNNER_INPUT_JITCONFIG is set; the JIT config must come from RUNNER_JIT_SECRET_ID"
unset ACTIONS_RUNNER_INPUT_JITCONFIG

RUNNER_HOME="${RUNNER_HOME:-/home/runner}"
run_cmd="${RUNNER_RUN_CMD:-$RUNNER_HOME/run.sh}"
profile="${RUNNER_PROFILE:-unknown}"
[[ "$profile" =~ ^[A-Za-z0-9._-]{1,64}$ ]] || profile=unknown
readonly version_re='^[0-9]{1,4}[.][0-9]{1,4}[.][0-9]{1,4}$'

whole_seconds() {
  # $1: variable name, $2: default. Prints the value; exits 78 unless it is a whole number.
  local value="${!1:-$2}"
  [[ "$value" =~ ^[0-9]+$ ]] || die "$EX_CONFIG" "$1 must be a whole number of seconds, got '$value'"
  printf '%d' "$((10#$value))"
}
idle_timeout="$(whole_seconds RUNNER_IDLE_TIMEOUT_SECONDS 600)"
stop_grace="$(whole_seconds RUNNER_STOP_GRACE_SECONDS 100)"
hook_timeout="$(whole_seconds RUNNER_HOOK_TIMEOUT_SECONDS 60)"
# Seconds between the hook's refusal line and the stop, so the Worker can send the line
# to GitHub's live log before the runner shuts down (it batches console lines).
refusal_flush="$(whole_seconds RUNNER_REFUSAL_FLUSH_SECONDS 2)"
# How long the hook waits for dispatch's admission record (a warm runner may get its job
# before the webhook has written it); below the hook's own bound, or every wait would
# end as "no verdict".
admission_wait="$(whole_seconds RUNNER_ADMISSION_WAIT_SECONDS 30)"
((admission_wait < hook_timeout)) ||
  die "$EX_CONFIG" "RUNNER_ADMISSION_WAIT_SECONDS ($admission_wait) must be less than RUNNER_HOOK_TIMEOUT_SECONDS ($hook_timeout)"

seconds() {
  # $1: variable name, $2: default. Prints the value; exits 78 unless it is a positive
  # number of seconds (decimals allowed: these are intervals between two looks).
  local value="${!1:-$2}"
  [[ "$value" =~ ^[0-9]{1,4}([.][0-9]{1,3})?$ && "$value" =~ [1-9] ]] ||
    die "$EX_CONFIG" "$1 must be a positive number of seconds, got '$value'"
  printf '%s' "$value"
}
# How often the hook looks for an admission record that is not there yet, and how often
# the watch loop below looks at the runner. The defaults are the production values; the
# tests set shorter ones so that they do not spend their time waiting.
admission_poll="$(seconds RUNNER_ADMISSION_POLL_SECONDS 2)"
watch_poll="$(seconds RUNNER_WATCH_POLL_SECONDS 0.5)"

# --- 2. hook files -------------------------------------------------------------
for name in RUNNER_POLICY_JSON RUNNER_POLICY_PY_GZ_B64 RUNNER_HOOK_PY_GZ_B64 RUNNER_JIT_PY_GZ_B64 RUNNER_AWS_PY_GZ_B64 RUNNER_ADMISSION_PY_GZ_B64; do
  [[ -n "${!name:-}" ]] || die "$EX_CONFIG" "$name is not set; the task definition must provide it"
done

hooks="$RUNNER_HOME/_hooks"
state="$RUNNER_HOME/_state"

if [[ -e "$hooks" ]]; then
  chmod -R u+w "$hooks"
  rm -rf "$hooks"
fi
rm -rf "$state"
mkdir -p "$hooks" "$state"

unpack() {
  # $1: variable holding gzip+base64, $2: file to write. Exits 78 if it does not decode.
  if ! printf '%s' "${!1}" | base64 -d 2>/dev/null | gzip -dc >"$2" 2>/dev/null; then
    die "$EX_CONFIG" "$1 is not valid gzip+base64"
  fi
  chmod 0444 "$2"
}
unpack RUNNER_POLICY_PY_GZ_B64 "$hooks/policy.py"
unpack RUNNER_HOOK_PY_GZ_B64 "$hooks/job_started.py"
unpack RUNNER_JIT_PY_GZ_B64 "$hooks/jit_config.py"
unpack RUNNER_AWS_PY_GZ_B64 "$hooks/aws_call.py"
unpack RUNNER_ADMISSION_PY_GZ_B64 "$hooks/admission_record.py"
printf '%s\n' "$RUNNER_POLICY_JSON" >"$hooks/policy.json"

# The job-started hook the runner runs (with `bash -e`). The job goes on only when the
# check exits 0 *and* recorded "allowed". Refused, crashed, killed: this step then never
# ends by itself, and no signal ends it early, because the Worker evaluates the next
# step's `if:` as soon as it ends; the watch loop below shuts the runner down instead,
# and on shutdown the Worker skips every remaining step (docs/runner.md). Paths are fixed
# here, so nothing in the job can point the check at another policy or state folder.
python="$(command -v python3)" || die "$EX_CONFIG" "python3 is not on PATH"
admission_args=()
if [[ -n "${RUNNER_ADMISSION_TABLE:-}" ]]; then
  admission_args=(--admission-table "$RUNNER_ADMISSION_TABLE" --admission-region "${RUNNER_ADMISSION_REGION:-${AWS_REGION:-}}" --admission-wait "$admission_wait" --admission-poll "$admission_poll")
fi
check="$(printf '%q ' "$python" "$hooks/job_started.py" --policy-file "$hooks/policy.json" --state-dir "$state" "${admission_args[@]}")"
cat >"$hooks/job-started.sh" <<WRAPPER
#!/usr/bin/env bash
# Written by entrypoint.sh: the runner-profile policy check (job_started.py).
trap '' INT TERM HUP
: >$(printf '%q' "$state/hook-started") # the verdict's deadline starts now, not when python3 is up
rc=0
$check || rc=\$?
if [[ \$rc -eq 0 && -e $(printf '%q' "$state/allowed") ]]; then exit 0; fi
if [[ ! -e $(printf '%q' "$state/refused") ]]; then
  echo "::error::Job refused: the runner-profile check ended with code \$rc and gave no verdict"
  echo "the runner-profile check ended with code \$rc and gave no verdict" >$(printf '%q' "$state/refused")
fi
while :; do sleep 3600; done
WRAPPER

# Fargate tasks have no Docker daemon: make job containers, service containers
# and container actions fail with a clear message (the runner calls this
# container hook instead of docker). Kept if the image configures its own.
cat >"$hooks/no-containers.sh" <<'EOF'
#!/usr/bin/env bash
echo "::error::This runner cannot run containers (jobs.<id>.container, services or Docker container actions): Fargate tasks have no Docker daemon."
exit 1
EOF

chmod 0444 "$hooks/policy.json"
chmod 0555 "$hooks/job-started.sh" "$hooks/no-containers.sh"

export ACTIONS_RUNNER_HOOK_JOB_STARTED="$hooks/job-started.sh"
export ACTIONS_RUNNER_CONTAINER_HOOKS="${ACTIONS_RUNNER_CONTAINER_HOOKS:-$hooks/no-containers.sh}"
# run.sh then traps SIGINT/SIGTERM and sends SIGINT to the Listener's process group.
export RUNNER_MANUALLY_TRAP_SIG=1
# A runner GitHub refuses for its version exits 7 instead of 1 (v2.333.0+; older ones
# ignore it, exit 1, and run-helper.sh turns that into 0).
export ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE=1

# Managed steps (RUNNER_STEPS_JSON set): every job must declare `container:` (a job
# without one fails in "Set up job"), and every step reaches managed_steps.py through the
# runner's container hooks, which runs it as a task of the step task definition. The
# hook path is ours whatever the image configures. The runner accepts only .js/.sh/.ps1
# hooks and runs a .sh one with bash, the JSON input on stdin (docs/runner.md).
if [[ -n "${RUNNER_STEPS_JSON:-}" ]]; then
  [[ -n "${RUNNER_STEPS_PY_GZ_B64:-}" ]] ||
    die "$EX_CONFIG" "RUNNER_STEPS_PY_GZ_B64 is not set; the task definition must provide it"
  unpack RUNNER_STEPS_PY_GZ_B64 "$hooks/managed_steps.py"
  printf '%s\n' "$RUNNER_STEPS_JSON" >"$hooks/steps.json"
  chmod 0444 "$hooks/steps.json"
  steps_hook="$(printf '%q ' "$python" "$hooks/managed_steps.py" --config "$hooks/steps.json" --policy-file "$hooks/policy.json" --state-dir "$state" "${admission_args[@]}")"
  cat >"$hooks/managed-steps.sh" <<WRAPPER
#!/usr/bin/env bash
# Written by entrypoint.sh: the container hook of a managed-steps profile (managed_steps.py).
exec $steps_hook
WRAPPER
  chmod 0555 "$hooks/managed-steps.sh"
  python3 "$hooks/managed_steps.py" --preflight --config "$hooks/steps.json" || exit "$EX_CONFIG"
  export ACTIONS_RUNNER_CONTAINER_HOOKS="$hooks/managed-steps.sh"
  export ACTIONS_RUNNER_REQUIRE_JOB_CONTAINER=true
fi
chmod 0555 "$hooks"

unset RUNNER_POLICY_JSON RUNNER_POLICY_PY_GZ_B64 RUNNER_HOOK_PY_GZ_B64 RUNNER_JIT_PY_GZ_B64
unset RUNNER_AWS_PY_GZ_B64 RUNNER_STEPS_JSON RUNNER_STEPS_PY_GZ_B64 RUNNER_ADMISSION_PY_GZ_B64
unset RUNNER_ENTRYPOINT_SH_GZ_B64 # the bootstrap's copy of this script, if it is still set

# --- 3. policy valid, required_env present (checked in the runner's env), and a
#        restricted profile knows where its admission records are ------------------
python3 "$hooks/job_started.py" --preflight --policy-file "$hooks/policy.json" "${admission_args[@]}" || exit "$EX_CONFIG"


# A command started with `&` from a non-interactive bash starts with SIGINT and SIGQUIT
# ignored, .NET keeps an ignored signal ignored, and run.sh stops the Listener only with
# SIGINT: without resetting them the Listener never hears a stop.
env --default-signal=INT true 2>/dev/null ||
  die "$EX_CONFIG" "env --default-signal is not supported (coreutils >= 8.31 is needed to stop the runner gracefully)"

# JIT config -> $RUNNER_HOME/.runner, .credentials, .credentials_rsaparams (0600), read
# with this task's own identity; the secret is deleted after this one read. Last of the
# checks, so a task that cannot start does not consume it. See docs/jit-config.md.
# The runner's version, read while the JIT config is fetched (no start latency).
"$RUNNER_HOME/bin/Runner.Listener" --version >"$state/runner-version" 2>/dev/null &
version_pid=$!
jit_rc=0
python3 "$hooks/jit_config.py" --runner-root "$RUNNER_HOME" || jit_rc=$?
wait "$version_pid" 2>/dev/null || true
runner_version="$(head -c 32 "$state/runner-version" 2>/dev/null | tr -d '[:space:]')" || true
[[ "$runner_version" =~ $version_re ]] || runner_version=unknown
runner_event started runner_version="$runner_version"
expected="${RUNNER_EXPECTED_VERSION:-}"
if [[ -n "$expected" && "$runner_version" != "$expected" ]]; then
  log "the image runs runner $runner_version, the profile states $expected: the version watch reads the profile's; fix runner_version or the image"
fi
if [[ "$jit_rc" -ne 0 ]]; then
  die "$jit_rc" "no JIT config for this task (jit_config.py exited $jit_rc); not starting the runner"
fi
unset RUNNER_JIT_SECRET_ID RUNNER_JIT_SECRET_REGION

# --- 4. run and watch ------------------------------------------------------------
session_pids() {
  # Prints the pids of every process in session $1 (field 6 of /proc/<pid>/stat: the
  # fourth after the command name, which ends at the last ") "). Matched in bash itself:
  # a here-string per process made each scan three times as slow (the watch loop scans
  # every poll until a job arrives).
  local dir stat
  for dir in /proc/[0-9]*; do
    read -r stat 2>/dev/null <"$dir/stat" || continue
    stat="${stat##*) }"
    [[ "$stat" =~ ^[^\ ]+\ [0-9-]+\ [0-9-]+\ ([0-9-]+)( |$) && "${BASH_REMATCH[1]}" == "$1" ]] &&
      printf '%s\n' "${dir#/proc/}"
  done
  return 0
}

worker_started() {
  # True once a Runner.Worker runs in session $1: the Listener starts one per job, before
  # "Set up job" downloads the job's actions, so a job counts from its assignment.
  local pid args
  for pid in $(session_pids "$1"); do
    mapfile -d '' -n 2 args 2>/dev/null <"/proc/$pid/cmdline" || continue
    [[ "${args[0]:-}" == */Runner.Worker || "${args[1]:-}" == */Runner.Worker ]] && return 0
  done
  return 1
}

kill_session() {
  # SIGKILL every process left in session $1; prints how many there were.
  local pids
  mapfile -t pids < <(session_pids "$1")
  ((${#pids[@]} == 0)) || kill -s KILL "${pids[@]}" 2>/dev/null || true
  printf '%d' "${#pids[@]}"
}

runner_pid=""
stop_deadline=""
outcome="" # refused | idle | signal
stop_runner() {
  # $1: outcome, $2: log line. Asks run.sh to stop the runner; killed after the grace.
  [[ -n "$outcome" ]] && return 0
  outcome="$1"
  log "$2"
  if [[ -z "$runner_pid" ]]; then
    exit 143
  fi
  stop_deadline=$((SECONDS + stop_grace))
  kill -s TERM "$runner_pid" 2>/dev/null || true
}
trap 'stop_runner signal "received SIGTERM; stopping the runner (grace $stop_grace s)"' TERM
trap 'stop_runner signal "received SIGINT; stopping the runner (grace $stop_grace s)"' INT

# setsid: run.sh leads a new session (it is not a process-group leader, so setsid does
# not fork and $! is run.sh's pid = the session id); run-helper.sh, the Listener, the
# Worker and job steps stay in that session even though run.sh's `set -m` gives them
# process groups of their own, so kill_session reaches all of them.
setsid env --default-signal=INT,QUIT "$run_cmd" &
runner_pid=$!

job_arrived=""
self_updated=""
bin_at_start="$(readlink "$RUNNER_HOME/bin" 2>/dev/null)" || bin_at_start=""
hook_started_at=""
refused_at=""
idle_deadline=$((SECONDS + idle_timeout))
while kill -0 "$runner_pid" 2>/dev/null; do
  if [[ -z "$job_arrived" ]] && { [[ -e "$state/hook-started" ]] || worker_started "$runner_pid"; }; then
    job_arrived=1
    log "a job was assigned; the idle watchdog is off"
  fi
  if [[ -z "$self_updated" && -L "$RUNNER_HOME/bin" && "$(readlink "$RUNNER_HOME/bin")" != "$bin_at_start" ]]; then
    # update.sh.template replaces bin with a symlink to bin.<new version> (docs/runner.md).
    self_updated="$(readlink "$RUNNER_HOME/bin")"
    self_updated="${self_updated##*/bin.}"
    [[ "$self_updated" =~ $version_re ]] || self_updated=unknown
    log "the runner updated itself from $runner_version to $self_updated before taking a job: move the image to the newest runner release (docs/lifecycle.md, Runner versions)"
    runner_event self_update from="$runner_version" to="$self_updated"
  fi
  if [[ -z "$hook_started_at" && -e "$state/hook-started" ]]; then
    hook_started_at=$SECONDS
  fi
  if [[ -z "$refused_at" && -e "$state/refused" ]]; then
    refused_at=$SECONDS
    log "job refused: $(head -c 500 "$state/refused" | tr -d '\n')"
  fi
  if [[ -z "$outcome" ]]; then
    if [[ -n "$refused_at" && $SECONDS -ge $((refused_at + refusal_flush)) ]]; then
      stop_runner refused "stopping the runner so that no further step of the refused job runs"
    elif [[ -n "$hook_started_at" && ! -e "$state/allowed" && ! -e "$state/refused" &&
      $SECONDS -ge $((hook_started_at + hook_timeout)) ]]; then
      stop_runner refused "the job-started hook gave no verdict within $hook_timeout s; refusing the job and stopping the runner"
    elif [[ -z "$job_arrived" && "$idle_timeout" -gt 0 && $SECONDS -ge $idle_deadline ]]; then
      stop_runner idle "no job arrived within $idle_timeout s; stopping"
    fi
  fi
  if [[ -n "$stop_deadline" && $SECONDS -ge $stop_deadline ]]; then
    log "runner did not stop within $stop_grace s; killed $(kill_session "$runner_pid") process(es)"
    stop_deadline=$((SECONDS + 3600))
  fi
  sleep "$watch_poll" &
  wait "$!" || true
done

rc=0
wait "$runner_pid" || rc=$?
left="$(kill_session "$runner_pid")"
[[ "$left" == 0 ]] || log "killed $left process(es) left in the runner's session"
case "$outcome" in
  refused)
    log "refused: the job was refused and the runner stopped; exit $EX_REFUSED"
    exit "$EX_REFUSED"
    ;;
  idle) exit 0 ;;
esac
if [[ "$rc" -eq "$EX_VERSION_REFUSED" ]]; then
  log "GitHub refused runner version $runner_version (exit $rc): this task took no job and is not replaced; move the image to the newest runner release (docs/lifecycle.md, Runner versions)"
  runner_event version_refused runner_version="$runner_version"
  exit "$EX_VERSION_REFUSED"
fi
log "runner exited with code $rc"
exit "$rc"

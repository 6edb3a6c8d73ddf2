#!/usr/bin/env bash
# Runner double: run.sh of the GitHub Actions runner (written for this repository, not
# copied). It has the structure of actions/runner src/Misc/layoutroot/run.sh at v2.332.0,
# because that structure decides who hears a stop:
#
# * Without RUNNER_MANUALLY_TRAP_SIG it runs run-helper.sh in the foreground, in a loop.
# * With it (the actions-runner image sets RUNNER_MANUALLY_TRAP_SIG=1) it turns on job
#   control (`set -m`), so run-helper.sh and the Listener it starts get a process group of
#   their own; it starts run-helper.sh in the background and traps INT and TERM to send
#   SIGINT to that whole group. A signal sent to run.sh's own group misses them.
# * run-helper.sh exit code 2 means "restart"; anything else ends run.sh: with that code in
#   manual-trap mode, with 0 otherwise except 7 (version deprecated, v2.333.0+) when
#   ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE=1.
#
# Bash cannot trap a signal that was ignored when it started: run.sh started with SIGINT
# ignored (`run.sh &` from a non-interactive shell) keeps ignoring SIGINT, and so does every
# process it starts.

DIR="$(cd -P "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

run_foreground() {
  while :; do
    cp -f "$DIR"/run-helper.sh.template "$DIR"/run-helper.sh
    "$DIR"/run-helper.sh "$@"
    returnCode=$?
    if [[ $returnCode -ne 2 ]]; then
      echo "Exiting runner..."
      if [[ "${ACTIONS_RUNNER_RETURN_VERSION_DEPRECATED_EXIT_CODE:-}" == "1" && $returnCode -eq 7 ]]; then
        exit 7
      fi
      exit 0
    fi
    echo "Restarting runner..."
  done
}

run_with_manual_trap() {
  set -m
  # shellcheck disable=SC2064,SC2154
  trap 'kill -INT -$PID' INT TERM
  while :; do
    cp -f "$DIR"/run-helper.sh.template "$DIR"/run-helper.sh
    "$DIR"/run-helper.sh "$@" &
    PID=$!
    wait $PID
    returnCode=$?
    if [[ $returnCode -ne 2 ]]; then
      echo "Exiting runner..."
      trap - INT TERM
      wait $PID
      exit $returnCode
    fi
    echo "Restarting runner..."
  done
}

if [[ -z "${RUNNER_MANUALLY_TRAP_SIG:-}" ]]; then
  run_foreground "$@"
else
  run_with_manual_trap "$@"
fi

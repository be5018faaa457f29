#!/usr/bin/env bash
# Start N processes of `rnnlm-train ARGS...` on this machine as one multi-process run
# (jax.distributed), wait for all of them and exit with the worst (highest) exit code.
#
#   scripts/launch_local.sh N ARGS...
#   XLA_FLAGS=--xla_force_host_platform_device_count=2 \
#     scripts/launch_local.sh 2 --config configs/tiny.py --workdir /tmp/tiny_mp
#
# Each process gets JAX_COORDINATOR_ADDRESS=127.0.0.1:PORT (a free port), JAX_NUM_PROCESSES=N
# and JAX_PROCESS_ID=i (what rnnlm_jax.parallel.maybe_initialize_distributed reads); process
# i's output goes to stdout/stderr with each line prefixed by "[i] ". SIGINT/SIGTERM to this
# script are passed to every process (they stop together at one step, with a checkpoint).
# RNNLM_TRAIN overrides the command (default: rnnlm-train, else python -m rnnlm_jax.main);
# RNNLM_HEARTBEAT_TIMEOUT (seconds) how soon the others stop when one process dies.
set -u

if [[ $# -lt 1 || ! "$1" =~ ^[1-9][0-9]*$ ]]; then
  echo "usage: $0 N ARGS...  (N processes of rnnlm-train ARGS on this machine)" >&2
  exit 2
fi
n=$1
shift

if [[ -n "${RNNLM_TRAIN:-}" ]]; then
  read -r -a train <<< "$RNNLM_TRAIN"
elif command -v rnnlm-train > /dev/null; then
  train=(rnnlm-train)
else
  train=("${PYTHON:-python}" -m rnnlm_jax.main)
fi

# A free TCP port on 127.0.0.1 (the coordinator, process 0, binds it).
port=$("${PYTHON:-python}" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')

# Each process writes into two named pipes read by prefixing filters: its redirections are
# plain files, so the background job is the process itself and $! its pid (signals reach it).
fifos=$(mktemp -d)
trap 'rm -rf "$fifos"' EXIT
pids=()
for ((i = 0; i < n; i++)); do
  mkfifo "$fifos/$i.out" "$fifos/$i.err"
  sed -u "s/^/[$i] /" < "$fifos/$i.out" &
  sed -u "s/^/[$i] /" < "$fifos/$i.err" >&2 &
  JAX_COORDINATOR_ADDRESS="127.0.0.1:$port" JAX_NUM_PROCESSES="$n" JAX_PROCESS_ID="$i" \
    "${train[@]}" "$@" > "$fifos/$i.out" 2> "$fifos/$i.err" &
  pids+=($!)
done

forward() { kill -s "$1" "${pids[@]}" 2> /dev/null; }
trap 'forward TERM' TERM
trap 'forward INT' INT

worst=0
for pid in "${pids[@]}"; do
  while true; do
    wait "$pid"
    rc=$?
    kill -0 "$pid" 2> /dev/null || break  # else `wait` was cut short by a trapped signal
  done
  ((rc > worst)) && worst=$rc
done
wait  # the output filters
exit "$worst"

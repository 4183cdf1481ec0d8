#!/usr/bin/env bash
# Start a one-node SLURM on this machine: munged, slurmctld and slurmd on localhost.
#
#   deploy/slurm-local/start-slurm.sh          # start, or check that it already runs
#   deploy/slurm-local/start-slurm.sh --stop   # stop the three daemons
#
# For the `cluster` tests (tests/cluster/test_slurm.py) and for trying
# deploy/jobqueue on one machine. Needs root and the Debian packages
# `slurm-wlm` and `munge` (installed by .ci/run; this script installs nothing).
#
# Idempotent: when the daemons run, answer, use the current configuration and
# the node is up, it only says so. Otherwise it (re)writes /etc/slurm/slurm.conf
# and cgroup.conf from the templates beside it, stops the daemons it finds
# through their pid files, starts fresh ones with a clean state, and waits until
# `sinfo` shows the node idle. Exits non-zero with the reason (and the daemon
# logs' last lines) when SLURM cannot start.
#
# Environment: SLURM_LOCAL_TIMEOUT (seconds to wait for the node, default 60).
set -euo pipefail

HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
CONF_DIR=/etc/slurm                 # where sbatch, sinfo ... look without SLURM_CONF
STATE_DIR=/var/spool/slurm-local
RUN_DIR=/run/slurm-local
LOG_DIR=/var/log/slurm-local
MUNGE_KEY=/etc/munge/munge.key
TIMEOUT=${SLURM_LOCAL_TIMEOUT:-60}
START=$SECONDS

say() { echo "start-slurm: $*"; }

die() {
    echo "start-slurm: error: $*" >&2
    local log
    for log in "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" /var/log/munge/munged.log; do
        if [[ -s $log ]]; then
            echo "---- last lines of $log" >&2
            tail -n 15 "$log" >&2
        fi
    done
    exit 1
}

# ---------------------------------------------------------------- checks
need_tools() {
    local tool missing=()
    for tool in munged munge unmunge mungekey slurmctld slurmd sinfo scontrol sbatch; do
        command -v "$tool" >/dev/null 2>&1 || missing+=("$tool")
    done
    if ((${#missing[@]})); then
        die "missing ${missing[*]}: install the packages first (apt-get install -y --no-install-recommends slurm-wlm munge)"
    fi
    [[ $(id -u) == 0 ]] || die "must run as root (it writes $CONF_DIR and starts system daemons)"
}

# Whether process $1 runs (exists and is not a zombie: nothing may reap orphans here) as command $2.
alive() {
    local pid=$1 name=$2 stat
    stat=$(cat "/proc/$pid/stat" 2>/dev/null) || return 1
    # /proc/PID/stat: "pid (comm) state ..."
    [[ $stat == "$pid ($name) "* && $stat != "$pid ($name) Z"* ]]
}

# The pid in pid file $1 if that process runs as command $2, else nothing.
live_pid() {
    local pidfile=$1 name=$2 pid
    [[ -r $pidfile ]] || return 0
    pid=$(<"$pidfile")
    if [[ $pid =~ ^[0-9]+$ ]] && alive "$pid" "$name"; then
        echo "$pid"
    fi
}

# Pids of running processes of the program $1 named $2 (by its executable's path, e.g. a
# daemon whose pid file was lost): this machine's SLURM belongs to this script.
program_pids() {
    local exe=$1 name=$2 proc pid
    for proc in /proc/[0-9]*; do
        pid=${proc#/proc/}
        [[ $(readlink "$proc/exe" 2>/dev/null) == "$exe" ]] && alive "$pid" "$name" && echo "$pid"
    done
    return 0
}

munge_ok() { munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; }

node_state() { sinfo -h -N -n "$HOST" -o '%t' 2>/dev/null | head -n 1; }

# ---------------------------------------------------------------- configuration
render_config() {
    local node
    # `slurmd -C` prints this machine's node line (CPUs, sockets, cores, RealMemory in MB).
    node=$(slurmd -C | head -n 1) || die "slurmd -C failed: cannot detect CPUs and memory"
    [[ $node == NodeName=* ]] || die "unexpected 'slurmd -C' output: $node"
    local mem=${node##*RealMemory=}
    mem=${mem%% *}
    [[ $mem =~ ^[0-9]+$ ]] || die "no RealMemory in 'slurmd -C' output: $node"
    # Declare 95 % of the memory: a node reporting less than declared would be drained.
    node="${node%%RealMemory=*}RealMemory=$((mem * 95 / 100)) NodeAddr=127.0.0.1 State=UNKNOWN"
    node="NodeName=$HOST ${node#NodeName=* }"
    sed -e "s|@HOST@|$HOST|g" -e "s|@STATE_DIR@|$STATE_DIR|g" -e "s|@RUN_DIR@|$RUN_DIR|g" \
        -e "s|@LOG_DIR@|$LOG_DIR|g" -e "s|@NODE_LINE@|$node|" "$HERE/slurm.conf.in"
}

config_current() {
    cmp -s "$WANT_CONF" "$CONF_DIR/slurm.conf" && cmp -s "$HERE/cgroup.conf" "$CONF_DIR/cgroup.conf"
}

install_config() {
    mkdir -p "$CONF_DIR"
    install -m 0644 "$WANT_CONF" "$CONF_DIR/slurm.conf"
    install -m 0644 "$HERE/cgroup.conf" "$CONF_DIR/cgroup.conf"
}

# ---------------------------------------------------------------- daemons
# Stop daemon $1: the pid in its pid file $2 and any other running copy of its program.
stop_daemon() {
    local name=$1 pidfile=$2 pids pid i
    pids=$({ live_pid "$pidfile" "$name"; program_pids "$(readlink -f "$(command -v "$name")")" "$name"; } | sort -u)
    for pid in $pids; do
        say "stopping $name (pid $pid)"
        kill -TERM "$pid" 2>/dev/null || true
    done
    for pid in $pids; do
        for ((i = 0; i < 50; i++)); do
            alive "$pid" "$name" || break
            sleep 0.2
        done
        if alive "$pid" "$name"; then
            say "$name (pid $pid) ignored SIGTERM: killing it"
            kill -KILL "$pid" 2>/dev/null || true
            sleep 0.5
        fi
    done
    rm -f "$pidfile"
}

start_munge() {
    if munge_ok; then
        return 0
    fi
    stop_daemon munged /run/munge/munged.pid
    if [[ ! -s $MUNGE_KEY ]]; then
        say "creating $MUNGE_KEY"
        mungekey --create --keyfile="$MUNGE_KEY"
    fi
    chown munge:munge "$MUNGE_KEY"
    chmod 0400 "$MUNGE_KEY"
    install -d -o munge -g munge -m 0755 /run/munge
    install -d -o munge -g munge -m 0700 /var/log/munge /var/lib/munge
    say "starting munged"
    # --force: take over a socket a dead munged left behind.
    runuser -u munge -- munged --force || die "munged did not start"
    local i
    for ((i = 0; i < 50; i++)); do
        munge_ok && return 0
        sleep 0.2
    done
    die "munged runs but 'munge -n | unmunge' fails"
}

start_slurm() {
    install -d -o slurm -g slurm -m 0755 "$STATE_DIR" "$STATE_DIR/slurmctld" "$RUN_DIR" "$LOG_DIR"
    install -d -m 0755 "$STATE_DIR/slurmd"
    # -c: no state from an earlier run (old jobs, a node marked down).
    say "starting slurmctld"
    slurmctld -c || die "slurmctld did not start"
    say "starting slurmd"
    slurmd || die "slurmd did not start"
}

wait_idle() {
    local deadline=$((SECONDS + TIMEOUT)) state="" resumed=0
    until scontrol ping 2>/dev/null | grep -q 'is UP'; do
        ((SECONDS < deadline)) || die "slurmctld does not answer 'scontrol ping' after ${TIMEOUT} s"
        [[ -n $(live_pid "$RUN_DIR/slurmctld.pid" slurmctld) ]] || die "slurmctld exited"
        sleep 0.5
    done
    while :; do
        state=$(node_state)
        case $state in
        idle | mix | alloc | comp) break ;;
        down* | drain* | drng* | fail*)
            # A node slurmctld saw before slurmd registered may start down: resume it once.
            if ((!resumed)) && [[ -n $(live_pid "$RUN_DIR/slurmd.pid" slurmd) ]]; then
                scontrol update NodeName="$HOST" State=RESUME >/dev/null 2>&1 || true
                resumed=1
            fi
            ;;
        esac
        if ((SECONDS >= deadline)); then
            die "node $HOST is '${state:-unknown}' after ${TIMEOUT} s, not idle ($(sinfo -h -R 2>/dev/null | head -n 1))"
        fi
        [[ -n $(live_pid "$RUN_DIR/slurmd.pid" slurmd) ]] || die "slurmd exited"
        sleep 0.5
    done
    say "node $HOST is $state ($(sinfo -h -N -n "$HOST" -o '%c CPUs, %m MB')) ready after $((SECONDS - START)) s"
}

healthy() {
    config_current && munge_ok &&
        [[ -n $(live_pid "$RUN_DIR/slurmctld.pid" slurmctld) && -n $(live_pid "$RUN_DIR/slurmd.pid" slurmd) ]] &&
        scontrol ping 2>/dev/null | grep -q 'is UP' &&
        [[ $(node_state) =~ ^(idle|mix|alloc|comp)$ ]]
}

# ---------------------------------------------------------------- main
HOST=$(hostname -s)
need_tools

if [[ ${1:-} == --stop ]]; then
    stop_daemon slurmd "$RUN_DIR/slurmd.pid"
    stop_daemon slurmctld "$RUN_DIR/slurmctld.pid"
    if munge_ok; then
        munged --stop >/dev/null 2>&1 || stop_daemon munged /run/munge/munged.pid
    fi
    say "stopped"
    exit 0
elif [[ -n ${1:-} ]]; then
    die "unknown argument '$1' (use no argument to start, --stop to stop)"
fi

WANT_CONF=$(mktemp)
trap 'rm -f "$WANT_CONF"' EXIT
render_config >"$WANT_CONF"

if healthy; then
    say "already running: node $HOST is $(node_state)"
    exit 0
fi
stop_daemon slurmd "$RUN_DIR/slurmd.pid"
stop_daemon slurmctld "$RUN_DIR/slurmctld.pid"
install_config
start_munge
start_slurm
wait_idle

#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the tests of slurm/ (CI runs
# it before the tests; a session can run it by hand). Debian's slurm-wlm and
# munge; no systemd: munged, slurmctld and slurmd are started directly, as root.
#
#   tools/slurm_local.sh start    install (when missing), configure, start; waits until the node is idle
#   tools/slurm_local.sh stop
#
# The node offers this machine's cores and memory to one partition, "debug".
# Process tracking by /proc (proctrack/linuxproc) and no task plugin: nothing
# here needs cgroups.
set -euo pipefail

conf_dir=/etc/slurm
state=/var/spool/slurm

start() {
  if ! command -v slurmctld >/dev/null || ! command -v munged >/dev/null; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends slurm-wlm munge
  fi
  local host cpus mem
  host=$(hostname -s)
  cpus=$(nproc)
  mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.9)}' /proc/meminfo)
  mkdir -p "$conf_dir" "$state/ctld" "$state/d" /var/log/slurm /run/munge
  cat >"$conf_dir/slurm.conf" <<CONF
ClusterName=unet-local
SlurmctldHost=$host
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
StateSaveLocation=$state/ctld
SlurmdSpoolDir=$state/d
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
JobRequeue=1
KillWait=30
NodeName=$host CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
  [ -s /etc/munge/munge.key ] || { dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 2>/dev/null; }
  chown munge:munge /etc/munge/munge.key /run/munge
  chmod 400 /etc/munge/munge.key
  pgrep -x munged >/dev/null || su -s /bin/sh munge -c /usr/sbin/munged
  pgrep -x slurmctld >/dev/null || slurmctld
  pgrep -x slurmd >/dev/null || slurmd
  for _ in $(seq 60); do
    if sinfo -h -o %t 2>/dev/null | grep -q idle; then
      echo "slurm: one node ($host, $cpus CPUs) idle in partition debug"
      return 0
    fi
    scontrol update nodename="$host" state=resume >/dev/null 2>&1 || true
    sleep 1
  done
  echo "slurm: the node did not come up; see /var/log/slurm/" >&2
  return 1
}

stop() {
  pkill -x slurmd || true
  pkill -x slurmctld || true
  pkill -x munged || true
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: tools/slurm_local.sh start | stop" >&2; exit 2 ;;
esac

#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for the `--executor slurm` tests and for trying it
# by hand: installs Debian's packages when missing (slurmctld, slurmd, slurm-client, munge),
# writes /etc/slurm/slurm.conf for localhost, creates the munge key, starts munged, slurmctld and
# slurmd (as root, without systemd) and waits until `sinfo` shows the node idle. Idempotent: a
# second call finds the daemons up and returns at once. Needs root.
#
# The node advertises 8 CPUs whatever the machine has (slurmd's config_overrides), so a test's
# sweep of three points runs as three jobs at once on a 2-core machine; memory is not a
# consumable resource here, so jobs' --mem requests are accepted without being enforced.
set -euo pipefail

if [ "$(id -u)" != 0 ]; then
  echo "slurm-local: needs root (it writes /etc/slurm and starts the daemons)" >&2
  exit 1
fi

need=()
command -v slurmctld >/dev/null || need+=(slurmctld)
command -v slurmd >/dev/null || need+=(slurmd)
command -v sbatch >/dev/null || need+=(slurm-client)
command -v munged >/dev/null || need+=(munge)
if [ ${#need[@]} -gt 0 ]; then
  echo "slurm-local: installing ${need[*]}"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq "${need[@]}" >/dev/null
fi

node="$(hostname -s)"
conf=/etc/slurm/slurm.conf
mkdir -p /etc/slurm /var/lib/slurm/slurmctld /var/lib/slurm/slurmd /var/log/slurm /run/slurm
wanted="$(cat <<EOF
# Written by peftc's scripts/slurm-local.sh: a one-node cluster on localhost.
ClusterName=peftc-local
SlurmctldHost=${node}(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=/var/lib/slurm/slurmctld
SlurmdSpoolDir=/var/lib/slurm/slurmd
SlurmctldPidFile=/run/slurm/slurmctld.pid
SlurmdPidFile=/run/slurm/slurmd.pid
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SlurmdParameters=config_overrides
ReturnToService=2
MpiDefault=none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MinJobAge=600
KillWait=5
SchedulerParameters=sched_interval=1,bf_interval=1
NodeName=${node} NodeAddr=127.0.0.1 CPUs=8 RealMemory=16000 State=UNKNOWN
PartitionName=debug Nodes=${node} Default=YES MaxTime=INFINITE State=UP
EOF
)"
if [ ! -f "$conf" ] || [ "$(cat "$conf")" != "$wanted" ]; then
  printf '%s\n' "$wanted" > "$conf"
  changed=1
else
  changed=0
fi

# munge: a key owned by the munge user, and the daemon running as that user.
if [ ! -s /etc/munge/munge.key ]; then
  dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
fi
chown munge:munge /etc/munge/munge.key
chmod 400 /etc/munge/munge.key
mkdir -p /run/munge /var/log/munge /var/lib/munge
chown munge:munge /run/munge /var/log/munge /var/lib/munge
if ! pgrep -u munge -x munged >/dev/null; then
  runuser -u munge -- /usr/sbin/munged
fi

running() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }
if [ "$changed" = 1 ]; then
  # A changed configuration: restart what runs with the old one.
  for pid in /run/slurm/slurmd.pid /run/slurm/slurmctld.pid; do
    if running "$pid"; then kill "$(cat "$pid")"; sleep 1; fi
  done
fi
running /run/slurm/slurmctld.pid || /usr/sbin/slurmctld
running /run/slurm/slurmd.pid || /usr/sbin/slurmd

for _ in $(seq 1 60); do
  state="$(sinfo -h -n "$node" -o '%t' 2>/dev/null || true)"
  case "$state" in
    idle*|mix*|alloc*) break ;;
    drain*|down*) scontrol update nodename="$node" state=resume 2>/dev/null || true ;;
  esac
  sleep 1
done
state="$(sinfo -h -n "$node" -o '%t' 2>/dev/null || true)"
case "$state" in
  idle*|mix*|alloc*) ;;
  *)
    echo "slurm-local: node $node is '$state' after 60 s; see /var/log/slurm/" >&2
    exit 1
    ;;
esac
echo "slurm-local: node $node is $state (partition debug)"
echo "slurm-local: stop with: kill \$(cat /run/slurm/slurmd.pid) \$(cat /run/slurm/slurmctld.pid); pkill -u munge -x munged"

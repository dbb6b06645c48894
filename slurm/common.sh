# Sourced by the job scripts in slurm/: runs `unet` under srun so that a
# preempted job checkpoints, requeues itself and resumes.
#
# Slurm warns a job before its time runs out (#SBATCH --signal=B:USR1@300, to
# this batch shell) or when it is preempted (SIGTERM to everything). Either way
# the signal reaches every `unet train` task through srun; they finish the step,
# rank 0 writes the checkpoint, and all exit with 75. On 75 this script
# requeues the job (#SBATCH --requeue); the requeued job runs the same command
# in the same run folder, which resumes from the checkpoint.

# The unet binary: $UNET, else the build in the folder the job was submitted from.
UNET=${UNET:-${SLURM_SUBMIT_DIR:-.}/build/tools/unet}
# CPU threads per task: what Slurm gave the task.
export OMP_NUM_THREADS=${SLURM_CPUS_PER_TASK:-1}

unet_srun() {
  srun --kill-on-bad-exit=1 "$UNET" "$@" &
  local pid=$! status
  trap 'kill -USR1 "$pid" 2>/dev/null' USR1 TERM
  # wait returns early when a trapped signal arrives: wait again until srun is gone.
  while :; do
    wait "$pid"
    status=$?
    kill -0 "$pid" 2>/dev/null || break
  done
  trap - USR1 TERM
  if [ "$status" -eq 75 ] && [ -n "${SLURM_JOB_ID:-}" ]; then
    echo "unet: checkpoint written; requeueing job $SLURM_JOB_ID to resume"
    scontrol requeue "$SLURM_JOB_ID"
  fi
  return "$status"
}

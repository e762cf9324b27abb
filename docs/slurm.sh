#!/bin/bash
# A droptune study as a Slurm job array: task 0 runs `droptune tune` (it creates the study,
# the MLflow experiment and the parent run, runs trials, and closes the study at the end);
# every other task waits until the study is prepared, then runs `droptune worker`.
#
#   sbatch --array=0-7 docs/slurm.sh studies/digits_cnn.yaml
#
# Slurm stops a task with SIGTERM (scancel, the time limit, preemption), then SIGKILL
# after KillWait seconds: droptune ends the running trial FAILED with the reason
# "terminated by SIGTERM" and exits; the study redoes that trial. Resubmit the array (or
# use --requeue) to go on: the count never starts over.
#
# The study is shared through PostgreSQL and an MLflow tracking server that every node can
# reach; set them here or in the environment before sbatch.
#SBATCH --job-name=droptune
#SBATCH --array=0-7
#SBATCH --cpus-per-task=4
#SBATCH --gres=gpu:1
#SBATCH --time=04:00:00
#SBATCH --output=droptune-%A_%a.log
set -euo pipefail

STUDY_FILE=${1:?usage: sbatch --array=0-N docs/slurm.sh STUDY_FILE}
: "${DROPTUNE_STORAGE:=postgresql+psycopg://droptune:password@dbhost:5432/droptune}"
: "${DROPTUNE_TRACKING_URI:=http://mlflowhost:5000}"
: "${DROPTUNE:=droptune}"          # the command; e.g. "python -m droptune" in a virtual environment
TASK=${SLURM_ARRAY_TASK_ID:-0}
STORES=(--storage "$DROPTUNE_STORAGE" --tracking-uri "$DROPTUNE_TRACKING_URI")

if [ "$TASK" = 0 ]; then
    # exec: the signal Slurm sends reaches droptune itself.
    exec $DROPTUNE tune "$STUDY_FILE" "${STORES[@]}"
fi
# Workers start with task 0: wait (at most 10 minutes) until it has prepared the study.
$DROPTUNE wait "$STUDY_FILE" --storage "$DROPTUNE_STORAGE" --timeout 600 --poll "${DROPTUNE_POLL:-5}"
exec $DROPTUNE worker "$STUDY_FILE" "${STORES[@]}"

#!/usr/bin/env bash
# Multi-GPU / multi-node training with torchrun, which sets RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR and
# MASTER_PORT for every process; chatmill reads them (no Python in the training processes: --no-python).
#   one node, 8 GPUs:   scripts/launch_torchrun.sh 8 configs/train/llama2_7b_vicuna_recipe.yaml
#   node i of N:        NNODES=N NODE_RANK=i MASTER_ADDR=host0 scripts/launch_torchrun.sh 8 CONFIG [key=value ...]
set -euo pipefail
NPROC=${1:?usage: launch_torchrun.sh GPUS_PER_NODE CONFIG [overrides...]}
CONFIG=${2:?usage: launch_torchrun.sh GPUS_PER_NODE CONFIG [overrides...]}
shift 2
cd "$(dirname "$0")/.."
exec torchrun --nnodes "${NNODES:-1}" --node-rank "${NODE_RANK:-0}" --nproc-per-node "$NPROC" \
  --master-addr "${MASTER_ADDR:-127.0.0.1}" --master-port "${MASTER_PORT:-29500}" \
  --no-python build/chatmill train "$CONFIG" "$@"

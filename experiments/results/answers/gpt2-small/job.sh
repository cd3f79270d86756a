#!/bin/bash
# flopcast suggest (cost): hf:gpt2 on h100-sxm, batch 48 (largest that fits: 55), predicted run 2.08 h [95.3 min, 2.81 h]
#SBATCH --job-name=flopcast-gpt2
#SBATCH --partition=gpu-h100
#SBATCH --gres=gpu:h100:1
#SBATCH --time=0-03:23:00  # p90 run time + 20%
#SBATCH --mem=139G  # 2 x the predicted device peak
#SBATCH --cpus-per-task=12
# one GPU per job: --max-gpus N also weighs data-parallel runs on up to N GPUs of a node (each at the recommended batch)

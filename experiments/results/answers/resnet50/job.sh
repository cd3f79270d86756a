#!/bin/bash
# flopcast suggest (cost): experiments/models/resnet.py:resnet50 on h100-sxm, batch 1656 (largest that fits: 1851), predicted run 11.4 h [8.74 h, 15.5 h]
#SBATCH --job-name=flopcast-resnet
#SBATCH --partition=gpu-h100
#SBATCH --gres=gpu:h100:1
#SBATCH --time=0-18:33:00  # p90 run time + 20%
#SBATCH --mem=143G  # 2 x the predicted device peak
#SBATCH --cpus-per-task=12
# one GPU per job: --max-gpus N also weighs data-parallel runs on up to N GPUs of a node (each at the recommended batch)

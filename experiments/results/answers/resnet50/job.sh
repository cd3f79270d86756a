#!/bin/bash
# flopcast suggest (cost): experiments/models/resnet.py:resnet50 on a100-80gb, batch 1664 (largest that fits: 1852), predicted run 14.7 h [6.68 h, 33.5 h]
#SBATCH --job-name=flopcast-resnet
#SBATCH --partition=gpu-a100
#SBATCH --gres=gpu:a100:1
#SBATCH --time=1-16:16:00  # p90 run time + 20%
#SBATCH --mem=143G  # 2 x the predicted device peak
#SBATCH --cpus-per-task=16
# one GPU per job: --max-gpus N also weighs data-parallel runs on up to N GPUs of a node (each at the recommended batch)

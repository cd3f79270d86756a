#!/bin/bash
# flopcast suggest (cost): experiments/models/resnet.py:resnet50 on a100-80gb, batch 1664 (largest that fits: 1852), predicted run 15.5 h [7.04 h, 35.4 h]
#SBATCH --job-name=flopcast-resnet
#SBATCH --partition=gpu-a100
#SBATCH --gres=gpu:a100:1
#SBATCH --time=1-18:28:00  # p90 run time + 20%
#SBATCH --mem=143G  # 2 x the predicted device peak
#SBATCH --cpus-per-task=16
# one GPU per job: --max-gpus N also weighs data-parallel runs on up to N GPUs of a node (each at the recommended batch)

#!/bin/bash
# flopcast suggest (cost): experiments/models/resnet.py:resnet50 on h100-sxm, batch 1704 (largest that fits: 1897), predicted run 10.3 h [7.9 h, 13.2 h]
#SBATCH --job-name=flopcast-resnet
#SBATCH --partition=gpu-h100
#SBATCH --gres=gpu:h100:1
#SBATCH --time=0-15:50:00  # p90 run time + 20%
#SBATCH --mem=143G  # 2 x the predicted device peak
#SBATCH --cpus-per-task=12
# one GPU per job: --max-gpus N also weighs data-parallel runs on up to N GPUs of a node (each at the recommended batch)

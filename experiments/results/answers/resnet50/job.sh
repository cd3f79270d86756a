#!/bin/bash
# flopcast suggest (cost): /work/wt17/experiments/models/resnet.py:resnet50 on h100-sxm, batch 1704 (largest that fits: 1899), predicted run 7.05 h [2.88 h, 18.2 h]
#SBATCH --job-name=flopcast-resnet
#SBATCH --partition=gpu-h100
#SBATCH --gres=gpu:h100:1
#SBATCH --time=0-21:48:00  # p90 run time + 20%
#SBATCH --mem=143G  # 2 x the predicted device peak
#SBATCH --cpus-per-task=12
# one GPU per job: data-parallel over a node's GPUs is not predicted yet (it waits for the distributed-training issue), so flopcast does not guess its speed-up

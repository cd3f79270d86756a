"""Sizes shared by the PyTorch, Keras and NumPy test models, and their hand-computed FLOPs (2 x MACs)."""

B = 8
# MLP: 64 -> 128 -> ReLU -> 10
D_IN, HIDDEN, N_OUT = 64, 128, 10
# CNN: 3x16x16 -> conv3x3(8) -> ReLU -> maxpool2 -> conv3x3(16) -> ReLU -> global mean -> linear(10)
C_IN, HW, C1, C2, K = 3, 16, 8, 16, 3
# Transformer encoder block (pre-LN): seq S, model dim D, H heads, FFN width F
S, D, H, F = 16, 64, 4, 128

MLP_MATMUL_FLOPS = 2 * B * D_IN * HIDDEN + 2 * B * HIDDEN * N_OUT  # 131072 + 20480 = 151552
MLP_FORWARD_FLOPS = MLP_MATMUL_FLOPS + B * HIDDEN + B * HIDDEN + B * N_OUT  # + bias, relu, bias = 153680
CNN_MATMUL_FLOPS = (
    2 * B * C1 * HW * HW * C_IN * K * K  # conv1: 884736
    + 2 * B * C2 * (HW // 2) ** 2 * C1 * K * K  # conv2: 1179648
    + 2 * B * C2 * N_OUT  # linear: 2560
)  # = 2066944
ENCODER_MATMUL_FLOPS = (
    4 * 2 * B * S * D * D  # q, k, v, out projections: 4194304
    + 2 * 2 * B * S * S * D  # Q K^T and P V over all heads: 524288
    + 2 * 2 * B * S * D * F  # FFN up and down: 4194304
)  # = 8912896

"""Every op of the fake training steps of typical models has a registry entry (formula or documented zero)."""

from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from _helpers import flop_counter_total, matmul_macs_total, trace

transformers = pytest.importorskip("transformers")


class CNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.c1, self.bn = nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.BatchNorm2d(8)
        self.c2, self.gn = nn.Conv2d(8, 8, 3, padding=2, dilation=2, groups=4), nn.GroupNorm(2, 8)
        self.mp, self.ct = nn.MaxPool2d(2), nn.ConvTranspose2d(8, 4, 3, stride=2)
        self.ap, self.fc = nn.AdaptiveAvgPool2d(1), nn.Linear(4, 10)

    def forward(self, x):
        x = self.mp(self.gn(self.c2(F.relu(self.bn(self.c1(x))))))
        x = F.interpolate(F.interpolate(x, scale_factor=2), scale_factor=2, mode="bilinear")
        return self.fc(self.ap(self.ct(x)).flatten(1))


class RNNs(nn.Module):
    def __init__(self):
        super().__init__()
        self.e, self.lstm = nn.Embedding(50, 16), nn.LSTM(16, 32, batch_first=True, num_layers=2)
        self.gru, self.cell, self.out = nn.GRU(32, 32, batch_first=True), nn.LSTMCell(32, 32), nn.Linear(32, 50)
        self.bag_mean, self.bag_sum = nn.EmbeddingBag(50, 16, mode="mean"), nn.EmbeddingBag(50, 16, mode="sum")

    def forward(self, i):
        y, _ = self.gru(self.lstm(self.e(i))[0])
        h, _ = self.cell(y[:, -1])
        loss = F.cross_entropy(self.out(y).flatten(0, 1), i.flatten())
        return loss + h.sum() + (self.bag_mean(i) + self.bag_sum(i)).sum()


class Blocks(nn.Module):
    def __init__(self):
        super().__init__()
        self.mha, self.ln, self.rms = nn.MultiheadAttention(32, 4, batch_first=True), nn.LayerNorm(32), nn.RMSNorm(32)
        self.lin = nn.Linear(32, 32)

    def forward(self, x):
        x = self.rms(self.ln(x + self.mha(x, x, x)[0]))
        q = self.lin(x).view(2, 8, 4, 8).transpose(1, 2)
        a = F.scaled_dot_product_attention(q, q, q, is_causal=True).transpose(1, 2).reshape(2, 8, 32)
        x = F.gelu(a) + F.silu(x) + torch.tanh(x) + torch.sigmoid(x) + F.dropout(x, 0.1, training=True)
        x = F.softmax(x, -1) + F.log_softmax(x, -1)
        return F.mse_loss(x, torch.zeros_like(x))


def hf(name):
    t = transformers
    configs = {
        "gpt2": lambda: t.GPT2LMHeadModel(
            t.GPT2Config(n_layer=2, n_embd=64, n_head=2, vocab_size=100, bos_token_id=0, eos_token_id=0)
        ),
        "bert": lambda: t.BertForMaskedLM(
            t.BertConfig(
                num_hidden_layers=2, hidden_size=64, num_attention_heads=2, intermediate_size=128, vocab_size=100
            )
        ),
        "llama": lambda: t.LlamaForCausalLM(
            t.LlamaConfig(
                num_hidden_layers=2,
                hidden_size=64,
                num_attention_heads=4,
                num_key_value_heads=2,
                intermediate_size=128,
                vocab_size=100,
            )
        ),
    }
    return configs[name]


def lm_loss(model, ids):
    logits = model(ids).logits
    return F.cross_entropy(logits.flatten(0, 1), ids.flatten())


MODELS = {
    "mlp": (
        lambda: nn.Sequential(nn.Linear(13, 64), nn.ReLU(), nn.Dropout(0.1), nn.Linear(64, 1)),
        lambda: (torch.empty(4, 13),),
        lambda m, x: m(x).mean(),
    ),
    "cnn": (CNN, lambda: (torch.empty(2, 3, 16, 16),), lambda m, x: m(x).mean()),
    "rnn": (RNNs, lambda: (torch.randint(0, 50, (2, 6)),), lambda m, i: m(i)),
    "blocks": (Blocks, lambda: (torch.empty(2, 8, 32),), lambda m, x: m(x)),
    **{k: (hf(k), lambda: (torch.randint(0, 100, (2, 16)),), lm_loss) for k in ("gpt2", "bert", "llama")},
}
OPTIMIZERS = {
    "adamw-for": lambda p: torch.optim.AdamW(p, foreach=False),
    "adamw-foreach": lambda p: torch.optim.AdamW(p, foreach=True),
    "sgd-foreach": lambda p: torch.optim.SGD(p, lr=0.1, momentum=0.9, foreach=True),
}


def train_step(loss_fn, make_opt):
    def step(model, *xs):
        opt = make_opt(model.parameters())
        for _ in range(2):  # the second step runs the steady-state momentum path
            loss_fn(model, *xs).backward()
            opt.step()
            opt.zero_grad()

    return step


@pytest.mark.parametrize("opt", OPTIMIZERS)
@pytest.mark.parametrize("model", MODELS)
def test_every_traced_op_is_registered(model, opt):
    build, inputs, loss_fn = MODELS[model]
    ops = trace(build, inputs, step=train_step(loss_fn, OPTIMIZERS[opt]))
    stragglers = sorted({str(r.op) for r in ops if not r.registered})
    assert not stragglers, f"{model}/{opt}: ops without a registry entry: {stragglers}"


@pytest.mark.parametrize("model", ["mlp", "gpt2", "bert"])
def test_matmul_totals_match_flop_counter(model):
    build, inputs, loss_fn = MODELS[model]

    def step(m, *xs):
        loss_fn(m, *xs).backward()

    ops = trace(build, inputs, step=step)
    assert matmul_macs_total(ops) == flop_counter_total(build, inputs, step=step)

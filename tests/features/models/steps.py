"""User-written train steps (``--step FILE.py:fn``) used by the tests."""

from __future__ import annotations

import torch


def mean_step(model, inputs, optimizer):
    """The built-in step with ``--loss mean``, written out."""
    optimizer.zero_grad(set_to_none=True)
    loss = model(*inputs).mean()
    loss.backward()
    optimizer.step()


def clipped_accumulating_step(model, inputs, optimizer):
    """Two micro-batches, gradient clipping, a logged loss value (``.item()`` after the backward)."""
    optimizer.zero_grad(set_to_none=True)
    for _ in range(2):
        loss = model(*inputs).pow(2).mean() / 2
        loss.backward()
    loss.item()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0, foreach=True)
    optimizer.step()


def raising_step(model, inputs, optimizer):
    """A step whose own code fails after the forward."""
    model(*inputs)
    raise KeyError("no labels in this batch")


NOT_A_FUNCTION = 3

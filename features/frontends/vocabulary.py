"""Import the front ends' own cost vocabulary (operators with no ATen counterpart) into the registry."""

from __future__ import annotations

from flopcast.features.frontends import numpy_formulas, tf_formulas
from flopcast.features.records import Category
from flopcast.features.registry import register_zero_cost

__all__ = ["numpy_formulas", "tf_formulas"]

# Metadata-only operators of the graph front ends (shape queries): no FLOPs, no memory traffic.
register_zero_cost("onnx.Shape", "onnx.Size", "tf.Shape", "tf.ShapeN", "tf.Size", "tf.Rank",
                   "tf.BroadcastGradientArgs", "tf.NoOp", "tf.Placeholder", "tf.Const", "tf.VarHandleOp",
                   "tf.ReadVariableOp", "tf.Identity", "tf.IdentityN", "tf.StopGradient",
                   category=Category.DATA_MOVEMENT, moves_bytes=False)

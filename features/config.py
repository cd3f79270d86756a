"""The one configuration record of ``flopcast analyze`` (and of the analysis half of ``predict``)."""

from __future__ import annotations

from dataclasses import dataclass, field

from flopcast.features.generate_options import GenerateOptions
from flopcast.features.rules import DEFAULT_RULES, CountingRules
from flopcast.features.step_options import StepOptions

MODES = ("train", "infer", "generate")
PRECISIONS = ("fp32", "fp32-strict", "tf32", "bf16", "fp16", "bf16-pure", "fp16-pure")
"""``bf16`` / ``fp16``: autocast over fp32 weights (mixed-precision training, AMP); ``bf16-pure`` / ``fp16-pure``:
the weights themselves in that dtype, no autocast (a model loaded with ``torch_dtype=torch.bfloat16``, as LLM
inference and serving run it); ``tf32`` / ``fp32-strict``: fp32 with TF32 matmuls and convolutions on / off."""
PURE_DTYPES = {"bf16-pure": "bfloat16", "fp16-pure": "float16"}
"""The torch dtype (name) of a pure low-precision step's weights and floating inputs."""
DEVICES = ("cuda", "cpu")
OPTIMIZERS = ("adamw", "adam", "sgd", "none")
FRAMEWORKS = ("auto", "torch", "numpy", "tf", "onnx")


@dataclass(frozen=True)
class AnalyzeConfig:
    """Everything one analysis needs, as given on the command line or to the Python API.

    Attributes:
        target: ``path/file.py:name``, ``path/model.onnx`` or ``hf:<model_type>``.
        inputs: one input spec per forward argument (empty: the file's ``INPUTS`` or the hf defaults).
        batch_size: value bound to the ``B`` symbol.
        dims: other symbol bindings (``S`` -> 1024).
        mode: ``train``, ``infer`` or ``generate`` (``model.generate()`` with a KV cache: ``generate`` set).
        precision: fp32 (PyTorch's defaults on a GPU: fp32 matmuls, TF32 convolutions), fp32-strict (TF32 off
            for convolutions too, ``torch.backends.cudnn.allow_tf32 = False``), tf32 (TF32 matmuls and
            convolutions), bf16 or fp16 (autocast with the device's policy).
        device: device kind the step is meant for (cuda or cpu).
        optimizer: adamw, adam, sgd or none.
        framework: front end to use, ``auto`` to pick it from the target.
        hf_config: path of a Hugging Face ``config.json`` for ``hf:`` targets.
        hf_overrides: ``key=value`` overrides of the HF config (``n_layer=48``).
        seq_len: sequence length of the default inputs of ``hf:`` targets.
        trace_all_layers: trace every layer of an ``hf:`` model's stack instead of composing it from
            traces of 3, 4 and 5 layers (:mod:`flopcast.features.layer_repeat`; same result, slower).
        step: how the train step is written (loss, clipping, accumulation, fused optimizer, scaler, or a
            user-written step function).
        rules: the counting rules (causal attention, FLOPs or MACs, activation checkpointing, MoE routing).
        generate: the generation request of ``--mode generate`` (prompt and new tokens, cache kind).
    """

    target: str
    inputs: tuple[str, ...] = ()
    batch_size: int = 1
    dims: dict[str, int] = field(default_factory=dict)
    mode: str = "train"
    precision: str = "fp32"
    device: str = "cuda"
    optimizer: str = "adamw"
    framework: str = "auto"
    hf_config: str | None = None
    hf_overrides: tuple[str, ...] = ()
    seq_len: int = 512
    trace_all_layers: bool = False
    step: StepOptions = field(default_factory=StepOptions)
    rules: CountingRules = DEFAULT_RULES
    generate: GenerateOptions | None = None

    def bindings(self) -> dict[str, int]:
        """Symbol bindings: ``B`` plus ``dims``."""
        return {"B": self.batch_size, **self.dims}

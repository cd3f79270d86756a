"""The parallel layout of a run: data-, tensor- and pipeline-parallel degrees over GPUs and nodes, and its groups.

Ranks are laid out as Megatron-LM lays them (``tp-cp-ep-dp-pp``: tensor-parallel ranks vary fastest, then
data-parallel, then pipeline stages), so a tensor-parallel group sits inside a node whenever it fits there, and
ranks fill nodes in order (rank ``r`` on node ``r // gpus_per_node``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flopcast.features.errors import AnalysisError

STRATEGIES = ("dp", "fsdp", "tp", "pp")
"""``--parallel`` strategies: DDP replicas, FSDP / ZeRO-3 shards, Megatron tensor parallelism, pipeline stages."""
GROUP_KINDS = ("dp", "tp", "pp")


class ParallelError(AnalysisError):
    """A parallel layout that cannot run as asked (degrees that do not multiply to the GPUs, ...): one line.

    An analysis error, so one raised while a GPU's shard of the model is built reaches the user as itself.
    """


@dataclass(frozen=True)
class Group:
    """One communicator of the layout.

    Attributes:
        kind: ``dp``, ``tp`` or ``pp``.
        ranks: its ranks.
        nodes: nodes it spans.
        per_node: most of its ranks on one node.
    """

    kind: str
    ranks: tuple[int, ...]
    nodes: int
    per_node: int

    @property
    def size(self) -> int:
        """Ranks in the group."""
        return len(self.ranks)


@dataclass(frozen=True)
class ParallelPlan:
    """Degrees of each strategy over ``gpus`` GPUs on ``nodes`` nodes.

    Attributes:
        gpus: GPUs of the run, all of one type.
        nodes: nodes they sit on (each holds ``gpus / nodes``).
        dp: data-parallel degree (replicas, or FSDP shards with ``fsdp``).
        tp: tensor-parallel degree.
        pp: pipeline stages.
        fsdp: data parallelism is FSDP / ZeRO-3 (parameters, gradients and optimizer state sharded over ``dp``).
        micro_batches: micro-batches per step through the pipeline (``--micro-batches``).
    """

    gpus: int
    nodes: int = 1
    dp: int = 1
    tp: int = 1
    pp: int = 1
    fsdp: bool = False
    micro_batches: int = 1

    def __post_init__(self) -> None:
        if self.gpus < 1 or self.nodes < 1:
            raise ParallelError(f"--gpus and --nodes must be >= 1, not {self.gpus} and {self.nodes}")
        if self.gpus % self.nodes:
            raise ParallelError(f"--gpus {self.gpus} cannot be spread evenly over --nodes {self.nodes}")
        if self.micro_batches < 1:
            raise ParallelError(f"--micro-batches must be >= 1, not {self.micro_batches}")
        if self.dp * self.tp * self.pp != self.gpus:
            raise ParallelError(f"dp{self.dp} x tp{self.tp} x pp{self.pp} = {self.dp * self.tp * self.pp} GPUs, "
                                f"--gpus says {self.gpus}")
        if self.micro_batches > 1 and self.pp == 1:
            raise ParallelError("--micro-batches splits a step through pipeline stages: give --parallel pp or "
                                "dpN,...,ppM (gradient accumulation is --grad-accumulation)")

    @classmethod
    def parse(cls, text: str, gpus: int, nodes: int = 1, micro_batches: int = 1) -> ParallelPlan:
        """The plan of ``--parallel``: ``dp``, ``fsdp``, ``tp`` or ``pp`` (all GPUs), or degrees (``dp2,tp2,pp2``).

        A strategy named without a degree takes the GPUs the others leave.

        Raises:
            ParallelError: an unknown strategy, a repeated one, or degrees that do not fit ``gpus``.
        """
        degrees: dict[str, int | None] = {}
        for item in (t.strip().lower() for t in text.split(",") if t.strip()):
            m = re.fullmatch(r"(dp|fsdp|tp|pp)(\d*)", item)
            if m is None:
                raise ParallelError(f"--parallel {text!r}: unknown strategy {item!r} (use dp, fsdp, tp, pp, e.g. "
                                    "dp2,tp2,pp2)")
            kind = m.group(1)
            if kind in degrees or (kind in ("dp", "fsdp") and {"dp", "fsdp"} & set(degrees)):
                raise ParallelError(f"--parallel {text!r}: {kind} given twice")
            degrees[kind] = int(m.group(2)) if m.group(2) else None
        if not degrees:
            raise ParallelError("--parallel names no strategy (use dp, fsdp, tp, pp, e.g. dp2,tp2,pp2)")
        if any(v == 0 for v in degrees.values()):
            raise ParallelError(f"--parallel {text!r}: a degree must be >= 1")
        open_ = [k for k, v in degrees.items() if v is None]
        if len(open_) > 1:
            raise ParallelError(f"--parallel {text!r}: give degrees to all but one of {', '.join(open_)}")
        fixed = 1
        for v in degrees.values():
            fixed *= v or 1
        if open_:
            if gpus % fixed:
                raise ParallelError(f"--gpus {gpus} is not a multiple of the {fixed} GPUs that {text!r} fixes")
            degrees[open_[0]] = gpus // fixed
        fsdp = "fsdp" in degrees
        dp = degrees.get("fsdp" if fsdp else "dp") or 1
        tp, pp = degrees.get("tp") or 1, degrees.get("pp") or 1
        if gpus % (tp * pp):
            raise ParallelError(f"--gpus {gpus} is not divisible by tp{tp} x pp{pp} = {tp * pp}")
        return cls(gpus=gpus, nodes=nodes, dp=dp, tp=tp, pp=pp, fsdp=fsdp, micro_batches=micro_batches)

    @property
    def gpus_per_node(self) -> int:
        """GPUs on each node."""
        return self.gpus // self.nodes

    def rank(self, dp: int, tp: int, pp: int) -> int:
        """Global rank of the GPU holding data-parallel index ``dp``, tensor shard ``tp`` and stage ``pp``."""
        return tp + self.tp * (dp + self.dp * pp)

    def groups(self, kind: str) -> list[Group]:
        """Every communicator of one kind (``dp``, ``tp`` or ``pp``), as Megatron-LM forms them."""
        if kind not in GROUP_KINDS:
            raise ValueError(f"group kind must be one of {GROUP_KINDS}, not {kind!r}")
        sizes = {"dp": self.dp, "tp": self.tp, "pp": self.pp}
        others = [k for k in GROUP_KINDS if k != kind]
        out = []
        for a in range(sizes[others[0]]):
            for b in range(sizes[others[1]]):
                ranks = []
                for i in range(sizes[kind]):
                    idx = {kind: i, others[0]: a, others[1]: b}
                    ranks.append(self.rank(idx["dp"], idx["tp"], idx["pp"]))
                out.append(self._group(kind, tuple(ranks)))
        return out

    def group(self, kind: str) -> Group:
        """The communicator of one kind that spans the most nodes (the slowest one sets the step)."""
        return max(self.groups(kind), key=lambda g: (g.nodes, -g.per_node))

    def _group(self, kind: str, ranks: tuple[int, ...]) -> Group:
        per = self.gpus_per_node
        counts: dict[int, int] = {}
        for r in ranks:
            counts[r // per] = counts.get(r // per, 0) + 1
        return Group(kind, ranks, len(counts), max(counts.values()))

    def describe(self) -> str:
        """``dp2 x tp2 x pp2 on 8 GPUs (1 node)``, FSDP and micro-batches where they apply."""
        parts = [f"{'fsdp' if self.fsdp else 'dp'}{self.dp}"] * (self.dp > 1 or (self.tp == 1 and self.pp == 1))
        parts += [f"tp{self.tp}"] * (self.tp > 1) + [f"pp{self.pp}"] * (self.pp > 1)
        mb = f", {self.micro_batches} micro-batches" if self.pp > 1 else ""
        nodes = f"{self.nodes} node{'s' * (self.nodes > 1)}"
        return f"{' x '.join(parts)} on {self.gpus} GPU{'s' * (self.gpus > 1)} ({nodes}){mb}"

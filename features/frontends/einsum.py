"""Cost of an einsum from its subscripts, lowered as PyTorch does: sums, then pairwise ``aten.bmm``.

Operands are contracted left to right. For each pair, indices in both operands and still needed
(output or a later operand) are batch dims, those in both and no longer needed are contracted (K),
the rest are M (left) or N (right): one ``bmm(B, M, K, N)`` = 2 * B * M * K * N FLOPs. An index in a
single operand and nowhere else is summed away first (``aten.sum``), a repeated index in one operand
takes a diagonal (a view).
"""

from __future__ import annotations

from collections.abc import Sequence

from flopcast.features.frontends.calls import OpCall, bmm, meta, prod, reduction

_SPARE = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def parse_equation(equation: str, ndims: Sequence[int]) -> tuple[list[str], str]:
    """Operand subscripts and output subscripts of ``equation``, ellipses expanded.

    Args:
        equation: einsum subscripts such as ``"bij,bjk->bik"`` or ``"...ij,jk"``.
        ndims: number of dims of each operand.

    Raises:
        ValueError: if the subscripts do not match the operands.
    """
    eq = equation.replace(" ", "")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    if len(terms) != len(ndims):
        raise ValueError(f"einsum {equation!r} has {len(terms)} operands, got {len(ndims)}")
    used = set(eq) - set(".,->")
    spare = [c for c in _SPARE if c not in used]
    ell_n = max((nd - len(t.replace("...", "")) for t, nd in zip(terms, ndims, strict=True) if "..." in t),
                default=0)
    ell = "".join(spare[:ell_n])
    out_terms = []
    for t, nd in zip(terms, ndims, strict=True):
        if "..." in t:
            k = nd - len(t.replace("...", ""))
            t = t.replace("...", ell[ell_n - k:])
        if len(t) != nd:
            raise ValueError(f"einsum term {t!r} does not match an operand with {nd} dims")
        out_terms.append(t)
    if arrow:
        out = rhs.replace("...", ell)
    else:
        counts = {c: lhs.count(c) for c in set(lhs) - set(".,")}
        out = ell + "".join(sorted(c for c, n in counts.items() if n == 1 and c not in ell))
    return out_terms, out


def einsum_calls(equation: str, shapes: Sequence[Sequence[int]], dtype: str) -> tuple[list[OpCall], tuple[int, ...]]:
    """The ATen calls an einsum lowers to, and its result shape.

    Args:
        equation: einsum subscripts.
        shapes: operand shapes.
        dtype: dtype name of the computation.

    Returns:
        ``(calls, output_shape)``.
    """
    terms, out = parse_equation(equation, [len(s) for s in shapes])
    size: dict[str, int] = {}
    for t, s in zip(terms, shapes, strict=True):
        for c, d in zip(t, s, strict=True):
            size[c] = d if size.get(c, 1) == 1 else size[c]
    # Diagonals of repeated indices are views.
    ops = ["".join(dict.fromkeys(t)) for t in terms]
    calls: list[OpCall] = []

    def needed_by(pos: int, others: Sequence[str]) -> set[str]:
        return set(out).union(*[set(o) for j, o in enumerate(others) if j != pos])

    for i, t in enumerate(ops):
        keep = "".join(c for c in t if c in needed_by(i, ops))
        if keep != t:
            calls.append(reduction("aten.sum", meta([size[c] for c in t], dtype),
                                   meta([size[c] for c in keep], dtype),
                                   [t.index(c) for c in t if c not in keep]))
            ops[i] = keep
    cur = ops[0]
    for j in range(1, len(ops)):
        right = ops[j]
        later = set(out).union(*[set(o) for o in ops[j + 1:]])
        batch = [c for c in cur if c in right and c in later]
        contr = [c for c in cur if c in right and c not in later]
        left = [c for c in cur if c not in right]
        rest = [c for c in right if c not in cur]
        calls.append(bmm(prod(size[c] for c in batch), prod(size[c] for c in left),
                         prod(size[c] for c in contr), prod(size[c] for c in rest), dtype))
        cur = "".join(batch + left + rest)
    return calls, tuple(size[c] for c in out)

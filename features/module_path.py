"""Which module owns the op being run, in forward and in backward (dotted paths like ``h.3.attn``)."""

from __future__ import annotations

import weakref

import torch
from torch.autograd.graph import register_multi_grad_hook
from torch.nn.modules.module import register_module_forward_hook, register_module_forward_pre_hook
from torch.utils._pytree import tree_flatten


class ModulePathTracker:
    """Context manager keeping a stack of the modules running, forward and backward.

    Forward: global module pre/post hooks push and pop. Backward: grad hooks on a module's outputs push
    its path when their gradients arrive and grad hooks on its inputs pop it, as
    ``torch.utils.module_tracker`` does, but with an ordered stack so the innermost module is known.

    Args:
        root: the model; paths are relative to it (the root itself is ``""``).
    """

    def __init__(self, root: torch.nn.Module) -> None:
        self._names: weakref.WeakKeyDictionary[torch.nn.Module, str] = weakref.WeakKeyDictionary()
        for name, mod in root.named_modules(remove_duplicate=False):
            self._names.setdefault(mod, name)
        self.stack: list[str] = []
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    @property
    def current(self) -> str:
        """Path of the innermost running module, ``""`` outside any."""
        return self.stack[-1] if self.stack else ""

    def _push(self, name: str):
        def fn(*_: object) -> None:
            self.stack.append(name)

        return fn

    def _pop(self, name: str):
        def fn(*_: object) -> None:
            for i in range(len(self.stack) - 1, -1, -1):
                if self.stack[i] == name:
                    del self.stack[i]
                    return

        return fn

    @staticmethod
    def _grad_tensors(obj: object) -> list[torch.Tensor]:
        flat, _ = tree_flatten(obj)
        return [t for t in flat if isinstance(t, torch.Tensor) and t.requires_grad]

    def _pre(self, mod: torch.nn.Module, inputs: object) -> None:
        name = self._names.get(mod)
        if name is None:
            return
        self.stack.append(name)
        if torch.is_grad_enabled():
            tensors = self._grad_tensors(inputs)
            if tensors:
                self._handles.append(register_multi_grad_hook(tensors, self._pop(name), mode="all"))

    def _post(self, mod: torch.nn.Module, inputs: object, output: object) -> None:
        name = self._names.get(mod)
        if name is None:
            return
        self._pop(name)()
        if torch.is_grad_enabled():
            tensors = self._grad_tensors(output)
            if tensors:
                self._handles.append(register_multi_grad_hook(tensors, self._push(name), mode="any"))

    def reset(self) -> None:
        """Forget the stack (between phases)."""
        self.stack.clear()

    def __enter__(self) -> ModulePathTracker:
        self._handles.append(register_module_forward_pre_hook(self._pre))
        self._handles.append(register_module_forward_hook(self._post))
        return self

    def __exit__(self, *exc: object) -> None:
        for h in self._handles:
            h.remove()
        self._handles.clear()

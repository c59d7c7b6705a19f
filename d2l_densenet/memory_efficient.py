"""Memory-efficient levels (exercise 3): recompute instead of store.

``memory_efficient`` of the chapter's :class:`~d2l_densenet.DenseBlock`,
the chapter's DenseNet and the paper's DenseNet-BC takes False, True or a
name in :data:`MEMORY_EFFICIENT_LEVELS`; this module holds what those
levels share: the names, the mixin that sets a whole model's level, and
``torch.utils.checkpoint`` wrappers (selective checkpointing for
"selective") that count each batch once in BatchNorm.
"""
from __future__ import annotations

import functools
import inspect

import torch
from torch import nn
from torch.utils import checkpoint

__all__ = ["MEMORY_EFFICIENT_LEVELS", "MemoryEfficient", "memory_level",
           "checkpoint_batchnorm_once", "checkpoint_level",
           "forward_stages"]

#: The names ``memory_efficient`` accepts besides False and True (True is
#: "bottleneck"), from the most memory kept to the least. Each acts in
#: every dense layer; "selective" and "layer" also in the stem and the
#: transitions, which then take the list of feature maps rather than
#: their concatenation, so no concatenation is stored:
#:
#: * "bottleneck": recompute the concatenation, BatchNorm, ReLU (and, in
#:   DenseNet-BC, the 1x1 conv) before each layer's last conv;
#:   torchvision's ``memory_efficient=True`` (Pleiss et al., 2017);
#: * "selective": selective checkpointing: keep every convolution's
#:   output, recompute the concatenations, BatchNorm, ReLU and pooling;
#: * "layer": recompute whole layers: a dense layer keeps only its output
#:   (growth-rate channels), the stem and each transition only theirs.
MEMORY_EFFICIENT_LEVELS = ("bottleneck", "selective", "layer")


def memory_level(value) -> str | bool:
    """False, or the name of the level ``memory_efficient=value`` means
    (True is "bottleneck"); a clear error for anything else."""
    if value is True:
        return "bottleneck"
    if value is False or (isinstance(value, str)
                          and value in MEMORY_EFFICIENT_LEVELS):
        return value
    raise ValueError(
        f"memory_efficient must be False, True or one of "
        f"{', '.join(map(repr, MEMORY_EFFICIENT_LEVELS))}, got {value!r}")


class MemoryEfficient:
    """Mixin for a model built of dense blocks: ``memory_efficient``
    reads and sets the level of every part that has one."""

    def _level_parts(self):
        return (m for m in self.modules()
                if m is not self and "memory_efficient" in vars(m))

    @property
    def memory_efficient(self):
        """False or the level's name (True reads as "bottleneck"); can be
        set on a built model (``net.memory_efficient = "layer"``)."""
        return next((m.memory_efficient for m in self._level_parts()),
                    False)

    @memory_efficient.setter
    def memory_efficient(self, value) -> None:
        value = memory_level(value)
        for m in list(self._level_parts()):
            m.memory_efficient = value

    def checkpoints_stages(self) -> bool:
        """Whether ``forward`` runs through :func:`forward_stages`."""
        return (self.memory_efficient in ("selective", "layer")
                and torch.is_grad_enabled())


def _keep_convolutions(ctx, op, *args, **kwargs):
    """Selective-checkpoint policy of the "selective" level."""
    if op is torch.ops.aten.convolution.default:
        return checkpoint.CheckpointPolicy.MUST_SAVE
    return checkpoint.CheckpointPolicy.PREFER_RECOMPUTE


def checkpoint_level(fn, modules, features: list[torch.Tensor],
                     level) -> torch.Tensor:
    """``fn(*features)``, checkpointed as ``level`` says: plainly for
    False, keeping convolution outputs for "selective", else recomputing
    all of it (BatchNorm in ``modules`` counts each batch once)."""
    if not level or not torch.is_grad_enabled():
        return fn(*features)
    keep = _keep_convolutions if level == "selective" else None
    return checkpoint_batchnorm_once(fn, modules, *features, keep=keep)


def forward_stages(stages, X: torch.Tensor, level) -> torch.Tensor:
    """Run ``stages`` (a model's stem modules, dense blocks, transitions,
    ..., head, in order) on ``X`` the "selective" / "layer" way: a dense
    block hands on the list of its feature maps (``forward_list``); the
    modules between two dense blocks (or before the first) run
    checkpointed on that list, so its concatenation is never stored."""
    features, group = [X], []
    for stage in stages:
        if not hasattr(stage, "forward_list"):
            group.append(stage)
            continue
        if group:
            features = [checkpoint_level(_chain(group), group, features,
                                         level)]
            group = []
        features = stage.forward_list(features)
    return _chain(group)(*features)


def _chain(modules):
    def run(*features):
        out = features[0] if len(features) == 1 else torch.cat(features, 1)
        for m in modules:
            out = m(out)
        return out
    return run


# Selective checkpointing can route the tensors it keeps through the
# saved-tensor hooks (``saved_tensor_bytes`` sees them) in newer PyTorch.
_HOOKS = ("respect_saved_tensors_hooks"
          in inspect.signature(checkpoint.checkpoint).parameters)


def checkpoint_batchnorm_once(fn, module, *inputs: torch.Tensor,
                              keep=None) -> torch.Tensor:
    """``torch.utils.checkpoint`` of ``fn(*inputs)`` (non-reentrant) whose
    recomputation in backward leaves the running statistics of the
    BatchNorm layers in ``module`` (a module or a list of them) as the
    forward pass left them, so each batch is counted once (torchvision's
    memory-efficient DenseNet counts it twice).

    ``keep``: a selective-checkpoint policy (``CheckpointPolicy`` per op,
    see ``create_selective_checkpoint_contexts``) naming what is kept
    rather than recomputed; None recomputes everything.
    """
    kwargs = {"use_reentrant": False}
    if keep is not None:
        kwargs["context_fn"] = functools.partial(
            checkpoint.create_selective_checkpoint_contexts, keep)
        if _HOOKS:
            kwargs["respect_saved_tensors_hooks"] = True
    if torch.compiler.is_compiling():
        # Compiled graphs recompute without re-running Python and apply
        # the running-statistics update once.
        return checkpoint.checkpoint(fn, *inputs, **kwargs)
    modules = [module] if isinstance(module, nn.Module) else module
    buffers = [b for top in modules for m in top.modules()
               if isinstance(m, nn.modules.batchnorm._NormBase)
               for b in m.buffers()]
    calls = []

    def run(*args):
        forward = not calls
        calls.append(1)
        # The same ops in both passes: selective checkpointing matches
        # the recomputation's ops to the forward pass's, one by one.
        saved = [b.clone() for b in buffers]
        try:
            return fn(*args)
        finally:   # also when the recomputation stops early
            with torch.no_grad():
                for b, before in zip(buffers, saved, strict=True):
                    b.copy_(b if forward else before)
    return checkpoint.checkpoint(run, *inputs, **kwargs)

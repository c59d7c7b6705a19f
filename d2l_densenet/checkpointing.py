"""The former name of ``memory_efficient.py`` (activation checkpointing:
recompute instead of store), kept so that ``d2l_densenet.checkpointing``
and the modules not yet updated still import; new code imports
``d2l_densenet.memory_efficient``. Saved training state (also called
checkpoints) is ``checkpoints.py``."""
from .memory_efficient import *  # noqa: F401,F403
from .memory_efficient import __all__  # noqa: F401

"""Runner-side additions: atomic checkpoint hook, layer-decay optimiser
constructor for segmentors, a console that says what matters
(``ConciseRunner``, ``ConciseIoUMetric``)."""

from .amp import AutocastOptimWrapper
from .checkpoint_hook import (
    AtomicCheckpointHook,
    atomic_write_bytes,
    atomic_write_text,
)
from .checkpoint_policy_hook import CheckpointPolicyHook
from .console import ConciseRunner, file_only
from .from_cfg import check_hooks, prepare_config  # wraps Runner.from_cfg
from .head_check_hook import HeadDataCheckHook, HeadDataMismatchError
from .nonfinite_hook import NonFiniteLossError, NonFiniteLossHook
from .optim import (
    PromptTuningOptimWrapperConstructor,
    SegLayerDecayOptimWrapperConstructor,
)
from .prompt_init_hook import PromptInitHook
from .rng_hook import RNGStateHook
from .run_errors import RunStoppedError
from .run_guard_hook import ResumeError, RunGuardHook
from .seg_metric import ConciseIoUMetric
from .work_dir_lock import WorkDirLock, WorkDirLockedError

__all__ = [
    'AutocastOptimWrapper',
    'AtomicCheckpointHook',
    'CheckpointPolicyHook',
    'atomic_write_bytes',
    'atomic_write_text',
    'PromptInitHook',
    'check_hooks',
    'prepare_config',
    'PromptTuningOptimWrapperConstructor',
    'SegLayerDecayOptimWrapperConstructor',
    'RNGStateHook',
    'RunGuardHook',
    'ResumeError',
    'ConciseRunner',
    'ConciseIoUMetric',
    'file_only',
    'HeadDataCheckHook',
    'HeadDataMismatchError',
    'NonFiniteLossError',
    'NonFiniteLossHook',
    'RunStoppedError',
    'WorkDirLock',
    'WorkDirLockedError',
]

"""Runner-side additions: atomic checkpoint hook, layer-decay optimiser
constructor for segmentors."""
from .checkpoint_hook import (AtomicCheckpointHook, atomic_write_bytes,
                              atomic_write_text)
from .checkpoint_policy_hook import CheckpointPolicyHook
from .optim import (PromptTuningOptimWrapperConstructor,
                    SegLayerDecayOptimWrapperConstructor)
from .rng_hook import RNGStateHook

__all__ = [
    'AtomicCheckpointHook', 'CheckpointPolicyHook', 'atomic_write_bytes',
    'atomic_write_text',
    'PromptTuningOptimWrapperConstructor',
    'SegLayerDecayOptimWrapperConstructor', 'RNGStateHook'
]

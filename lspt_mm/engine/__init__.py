"""Runner-side additions (hooks)."""
from .checkpoint_hook import (AtomicCheckpointHook, atomic_write_bytes,
                              atomic_write_text)

__all__ = ['AtomicCheckpointHook', 'atomic_write_bytes', 'atomic_write_text']

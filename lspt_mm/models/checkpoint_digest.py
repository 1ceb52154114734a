"""A content digest of a checkpoint's tensors, recorded when it is saved
and verified whenever it is read.

torch does not check the records of its zip files: a checkpoint whose
tensor bytes changed in place (a bad copy, a flipped disk sector) loads
without a word and evaluates to another number. The checkpoint hook
(:class:`~lspt_mm.engine.checkpoint_hook.AtomicCheckpointHook`) records
``meta['lspt_mm_digest']``, BLAKE2b digests of every tensor of
``state_dict`` (dtype, shape, bytes, in order) and of its key names, and
every read of a
checkpoint file through this project's safe loader (``tools/test.py``,
``--resume``, ``load_from``, mmseg's ``init_model``, mmpretrain's
``get_model``, the inferencers, ``pretrained=``) recomputes it and refuses a
file whose tensors no longer match. A state dict whose keys changed was
edited by a program and saved again, not damaged: the checkpoint policy
judges it (a key missing or left over is refused there). The digest is a plain string in ``meta``: plain
mmengine loads such files as any other. Files without one (published
weights, checkpoints of other tools) load as before.
"""

import hashlib

import torch

DIGEST_KEY = 'lspt_mm_digest'


class CheckpointCorruptError(RuntimeError):
    """A checkpoint's tensors differ from the digest recorded when it was
    saved."""


def keys_digest(state_dict):
    """BLAKE2b (hex) of the key names of ``state_dict``, in order."""
    return hashlib.blake2b(
        '\n'.join(map(str, state_dict)).encode(), digest_size=20
    ).hexdigest()


def tensor_digest(state_dict):
    """BLAKE2b (hex) of the tensors of ``state_dict`` (their order, dtypes,
    shapes and bytes)."""
    h = hashlib.blake2b(digest_size=20)
    for value in state_dict.values():
        if not isinstance(value, torch.Tensor):
            h.update(repr(value).encode())
            continue
        t = value.detach().cpu().contiguous()
        h.update(f'{t.dtype}{tuple(t.shape)}'.encode())
        if t.numel():
            h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes())
    return h.hexdigest()


def record_digest(checkpoint):
    """Add ``meta['lspt_mm_digest']`` for ``checkpoint['state_dict']``
    (a runner checkpoint dict, before it is written)."""
    state_dict = checkpoint.get('state_dict')
    if isinstance(state_dict, dict):
        meta = checkpoint.setdefault('meta', {})
        meta[DIGEST_KEY] = dict(
            tensors=tensor_digest(state_dict), keys=keys_digest(state_dict)
        )
    return checkpoint


def verify_digest(checkpoint, source):
    """Raise :class:`CheckpointCorruptError` when ``checkpoint`` (a loaded
    dict) records a digest its ``state_dict`` no longer has; files
    without a digest pass."""
    if not isinstance(checkpoint, dict):
        return checkpoint
    meta = checkpoint.get('meta')
    state_dict = checkpoint.get('state_dict')
    if not (isinstance(meta, dict) and isinstance(state_dict, dict)):
        return checkpoint
    recorded = meta.get(DIGEST_KEY)
    if not isinstance(recorded, dict) or 'tensors' not in recorded:
        return checkpoint
    if recorded.get('keys') != keys_digest(state_dict):
        # a program edited the state dict (keys added or removed) and saved
        # it again: not bit rot; the checkpoint policy judges its keys
        return checkpoint
    if tensor_digest(state_dict) != recorded['tensors']:
        raise CheckpointCorruptError(
            f'Checkpoint {source!r} is corrupt: its tensors differ from the '
            'digest recorded when it was saved (the file changed after the '
            'save: a bad copy, transfer or disk). Nothing was loaded. Copy '
            'it again from where it was written, or use another checkpoint.'
        )
    return checkpoint

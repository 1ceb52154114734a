"""lspt_mm: Long-term Spatial Prompt Tuning (and its baselines) for
mmpretrain / mmsegmentation."""

from . import compat  # noqa: F401  (must run before any mm library import)
from .models import PromptedViT  # noqa: F401,E402
from . import datasets, engine  # noqa: F401,E402  (registries)
from .utils import count_parameters, log_trainable_parameters  # noqa: E402

from .version import __version__  # noqa: E402,F401
from .model_index import register_model_index  # noqa: E402

register_model_index(missing_ok=True)  # mmpretrain.list_models / get_model
__all__ = [
    'PromptedViT',
    '__version__',
    'count_parameters',
    'log_trainable_parameters',
]

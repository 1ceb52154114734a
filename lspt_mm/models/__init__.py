import importlib
import pkgutil

from .checkpoint import convert_state_dict, load_vit_weights
from .methods import METHODS, MethodSpec, get_method, method_class
from .prompt_methods import PromptMethod
from .prompted_vit import PromptedViT
from .vit_blocks import attention_weights, block_forward

# Every module of this package is imported, so a method component added as
# a new module here registers itself with no import line to write
# (docs/DEVELOPING.md, "Adding a tuning method").
for _module in sorted(m.name for m in pkgutil.iter_modules(__path__)):
    importlib.import_module(f'{__name__}.{_module}')

__all__ = [
    'PromptedViT',
    'METHODS',
    'MethodSpec',
    'PromptMethod',
    'get_method',
    'method_class',
    'attention_weights',
    'block_forward',
    'convert_state_dict',
    'load_vit_weights',
]

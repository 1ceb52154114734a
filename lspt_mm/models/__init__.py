from .checkpoint import convert_state_dict, load_vit_weights
from .methods import METHODS, MethodSpec, get_method, method_class
from .prompt_methods import PromptMethod
from .prompted_vit import PromptedViT, attention_weights, block_forward

__all__ = [
    'PromptedViT', 'METHODS', 'MethodSpec', 'PromptMethod', 'get_method',
    'method_class', 'attention_weights', 'block_forward',
    'convert_state_dict', 'load_vit_weights'
]

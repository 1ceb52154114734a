from .checkpoint import convert_state_dict, load_vit_weights
from .prompt_methods import PROMPT_METHODS, build_prompt_method
from .prompted_vit import PromptedViT, attention_weights, block_forward

__all__ = [
    'PromptedViT', 'PROMPT_METHODS', 'build_prompt_method',
    'attention_weights', 'block_forward', 'convert_state_dict',
    'load_vit_weights'
]

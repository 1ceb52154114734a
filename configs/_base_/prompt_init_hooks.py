# custom_hooks of the runtimes (configs/_base_/cls_runtime.py) plus
# PromptInitHook, which computes a data-driven prompt_init (SPT, VIPAMIN;
# lspt_mm/models/prompt_init.py) from a seeded training sample when training
# starts. tools/train.py adds the hook by itself when a config asks for such
# an init; configs meant for mmengine's Runner.from_cfg name it:
#   custom_hooks = {{_base_.prompt_init_custom_hooks}}
prompt_init_custom_hooks = [
    dict(type='CheckpointPolicyHook'),
    dict(type='TrainableParamsHook'),
    dict(type='RNGStateHook'),
    dict(type='PromptInitHook'),
]

# Runtime for the classification configs (mmpretrain scope).
default_scope = 'mmpretrain'
# mmengine's Runner; the environment, config, hook order and per-parameter
# optimiser settings go to the work dir's log file only, not the console
# (runner_type = 'Runner' shows them there too)
runner_type = 'ConciseRunner'
custom_imports = dict(imports=['lspt_mm'], allow_failed_imports=False)

default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=20),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # the last checkpoint is what is tested; keep one
    # writes epoch_N.pth and `last_checkpoint` atomically (temp + rename)
    checkpoint=dict(
        type='AtomicCheckpointHook',
        interval=10,
        max_keep_ckpts=1,
        save_last=True,
    ),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='VisualizationHook', enable=False),
)
custom_hooks = [
    # the work dir's lock for any runner (Runner.from_cfg too) and the
    # --resume checks (pointer, schedule, optimiser settings)
    dict(type='RunGuardHook'),
    # load_from / --resume checkpoints must fit the model (no random parts)
    dict(type='CheckpointPolicyHook'),
    dict(type='TrainableParamsHook'),
    # torch RNG state in checkpoints: --resume continues bit-exactly
    dict(type='RNGStateHook'),
    # a non-finite loss or gradient stops the run before the step is
    # applied (action='skip' skips such steps, counted); no NaN checkpoints
    dict(type='NonFiniteLossHook', action='stop'),
    # the heads' num_classes must be the dataset's class count
    dict(type='HeadDataCheckHook'),
    # a data-driven prompt_init (SPT, VIPAMIN) computed when training
    # starts; does nothing for 'uniform' prompts (the default)
    dict(type='PromptInitHook'),
]

env_cfg = dict(
    cudnn_benchmark=False,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(type='UniversalVisualizer', vis_backends=vis_backends)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)

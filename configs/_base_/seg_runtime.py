# Runtime for the segmentation configs (mmseg scope).
# (custom_imports for lspt_mm: in _base_/models/upernet_prompted_vit.py)
default_scope = 'mmseg'
# mmengine's Runner; the environment, config, hook order and per-parameter
# optimiser settings go to the work dir's log file only, not the console
# (runner_type = 'Runner' shows them there too)
runner_type = 'ConciseRunner'
default_hooks = dict(
    timer=dict(type='IterTimerHook'),
    logger=dict(type='LoggerHook', interval=50, log_metric_by_epoch=False),
    param_scheduler=dict(type='ParamSchedulerHook'),
    # writes iter_N.pth and `last_checkpoint` atomically (temp + rename)
    checkpoint=dict(
        type='AtomicCheckpointHook',
        by_epoch=False,
        interval=16000,
        max_keep_ckpts=3,
        save_best='mIoU',
        rule='greater',
    ),
    sampler_seed=dict(type='DistSamplerSeedHook'),
    visualization=dict(type='SegVisualizationHook'),
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
    cudnn_benchmark=True,
    mp_cfg=dict(mp_start_method='fork', opencv_num_threads=0),
    dist_cfg=dict(backend='nccl'),  # gloo on CPU-only machines (compat)
)
vis_backends = [dict(type='LocalVisBackend')]
visualizer = dict(
    type='SegLocalVisualizer', vis_backends=vis_backends, name='visualizer'
)
log_processor = dict(by_epoch=False)
log_level = 'INFO'
load_from = None
resume = False
randomness = dict(seed=0, deterministic=False)
tta_model = dict(type='SegTTAModel')

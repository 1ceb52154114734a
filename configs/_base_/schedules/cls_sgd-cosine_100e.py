# Prompt-tuning schedule of GaPT / VPT (method.md): SGD momentum 0.9,
# weight decay 0, 100 epochs, 10 linear warm-up epochs, then cosine to 0.
# lr and weight decay (None) come from the task's recipe (the table in
# lspt_mm/recipes.py, with its provenance; apply_task there).
# The constructor with a (neutral) paramwise_cfg leaves frozen tensors out
# of the optimiser's parameter groups (and logs one line about them).
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=None, momentum=0.9, weight_decay=None),
    constructor='PromptTuningOptimWrapperConstructor',
    paramwise_cfg=dict(custom_keys={}),
)
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=10,
        convert_to_iter_based=True,
    ),
    dict(
        type='CosineAnnealingLR',
        T_max=90,
        eta_min=0.0,
        by_epoch=True,
        begin=10,
        end=100,
        convert_to_iter_based=True,
    ),
]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=10)

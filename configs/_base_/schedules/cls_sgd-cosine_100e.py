# Prompt-tuning schedule of GaPT / VPT (method.md): SGD momentum 0.9,
# weight decay 0, 100 epochs, 10 linear warm-up epochs, then cosine to 0.
# The learning rate is set per task by the child config (see
# lspt_mm/datasets/benchmarks.py for the table and its provenance).
optim_wrapper = dict(
    optimizer=dict(type='SGD', lr=0.1, momentum=0.9, weight_decay=0.))
param_scheduler = [
    dict(
        type='LinearLR',
        start_factor=1e-3,
        by_epoch=True,
        begin=0,
        end=10,
        convert_to_iter_based=True),
    dict(
        type='CosineAnnealingLR',
        T_max=90,
        eta_min=0.,
        by_epoch=True,
        begin=10,
        end=100,
        convert_to_iter_based=True),
]
train_cfg = dict(by_epoch=True, max_epochs=100, val_interval=10)

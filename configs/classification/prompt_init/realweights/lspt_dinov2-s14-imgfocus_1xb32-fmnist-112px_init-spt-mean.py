# The real-weights config (../../realweights/, Fashion-MNIST, frozen
# DINOv2-S/14 encoder) with
# prompt_init=spt_mean for every prompt method of the methods table
# (lspt_mm/models/prompt_init.py), e.g.
#   python tools/analysis_tools/methods_table.py --config <this file> \
#       --methods vpt_deep gapt lspt \
#       --work-dir work_dirs/methods_table_spt-mean
# (the same as --cfg-options model.backbone.prompt_init=... on the base).
_base_ = ['../../realweights/lspt_dinov2-s14-imgfocus_1xb32-fmnist-112px.py']
model = dict(backbone=dict(prompt_init='spt_mean'))

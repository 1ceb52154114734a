# LSPT on a frozen MoCo v3 ViT-B/16 (300 epochs), UPerNet, ADE20K 512x512.
# Weights: checkpoints/linear-vit-b-300ep.pth.tar (the linear-probe file; its
# `head.*` is dropped) from
#   https://dl.fbaipublicfiles.com/moco-v3/vit-b-300ep/linear-vit-b-300ep.pth.tar
_base_ = ['./lspt-mae-base_upernet_8xb2-160k_ade20k-512x512.py']
model = dict(
    backbone=dict(pretrained='checkpoints/linear-vit-b-300ep.pth.tar')
)

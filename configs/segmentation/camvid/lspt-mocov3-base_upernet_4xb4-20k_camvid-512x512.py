# Full-size GPU setting (not run here): LSPT on a frozen MoCo v3 ViT-B/16;
# the MAE setting with the MoCo v3 file (README, Pretrained weights).
_base_ = ['./lspt-mae-base_upernet_4xb4-20k_camvid-512x512.py']
model = dict(
    backbone=dict(pretrained='checkpoints/linear-vit-b-300ep.pth.tar')
)

# The main job: LSPT on a frozen MAE ViT-B/16 + UPerNet, ADE20K 512x512,
# 160k iterations, batch 16. Short name for
# configs/segmentation/lspt-mae-base_upernet_8xb2-160k_ade20k-512x512.py
#   python tools/train.py configs/lspt_vitb_ade20k.py
#   python tools/test.py configs/lspt_vitb_ade20k.py CHECKPOINT
_base_ = ['./segmentation/lspt-mae-base_upernet_8xb2-160k_ade20k-512x512.py']

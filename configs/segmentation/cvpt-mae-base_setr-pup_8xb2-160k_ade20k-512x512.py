# CVPT, 100 prompts, with the SETR-PUP head (CVPT's and GaPT's ADE20K head).
_base_ = ['./lspt-mae-base_setr-pup_8xb2-160k_ade20k-512x512.py']
model = dict(backbone=dict(prompt_method='cvpt'))

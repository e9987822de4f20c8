"""CelebA at 64x64 and 5 bits for one GPU: the original's CelebA choices (its README's celeba command: 1x1
convolutions, additive coupling, learnt top prior, 5 bits, lr 0.001, seed 0) with 4 levels for 64 px,
`python train.py --problem celeba --image_size 64 --n_level 4 --depth 32 --width 512 --flow_permutation 2
--flow_coupling 0 --seed 0 --learntop --lr 0.001 --n_bits_x 5` plus `--data_dir CELEBA` (the release's
aligned crops: Real NVP's face crop resized to 64 px). The batch is the original default's 64 at the
anchor size 32, i.e. 16 faces of 64 px per step and GPU. Not in the paper.

Not trained here (the project's machine has no GPU): no bits/dim has been measured for it. The CPU config
celeba_cpu (4 levels x 8 steps, width 64) is the one trained on this project's machine; this one is its
scale-up to the paper's depth and width."""
FLAGS = dict(problem="celeba", image_size=64, n_levels=4, depth=32, width=512, flow_permutation="2",
             flow_coupling="0", seed=0, learntop=True, lr=0.001, n_bits_x=5)
TARGET = ("below celeba_cpu's 1.513 test bits/dim (5-bit) and samples at temperature 0.7 sharper than its: expected, "
          "not measured (never trained here; no GPU)")

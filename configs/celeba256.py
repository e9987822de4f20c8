"""CelebA-HQ 256x256 at 5 bits (the paper's face samples, qualitative), the original README's command
`mpiexec -n 40 python train.py --problem celeba --image_size 256 --n_level 6 --depth 32 --flow_permutation 2
--flow_coupling 0 --seed 0 --learntop --lr 0.001 --n_bits_x 5` (one image per worker). Needs --data_dir."""
FLAGS = dict(problem="celeba", image_size=256, n_levels=6, depth=32, flow_permutation="2", flow_coupling="0",
             seed=0, learntop=True, lr=0.001, n_bits_x=5)
TARGET = "qualitative: realistic 256x256 faces at temperature 0.7 (no bits/dim published); 40 GPUs"

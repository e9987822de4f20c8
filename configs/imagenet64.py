"""ImageNet 64x64 (van den Oord's downsampled set) as in the paper (Table 2: 3.81 bits/dim) and the original
README's command `mpiexec -n 8 python train.py --problem imagenet-oord --image_size 64 --n_level 4 --depth 48
--flow_permutation 2 --flow_coupling 1 --seed 0 --learntop --lr 0.001 --n_bits_x 8` (16 images per worker).
Needs --data_dir (TFRecords)."""
FLAGS = dict(problem="imagenet-oord", image_size=64, n_levels=4, depth=48, flow_permutation="2", flow_coupling="1",
             seed=0, learntop=True, lr=0.001, n_bits_x=8)
TARGET = "test 3.81 bits/dim (paper, Table 2), 8 GPUs"

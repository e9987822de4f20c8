"""ImageNet 32x32 (van den Oord's downsampled set) as in the paper (Table 2: 4.09 bits/dim) and the original
README's command `mpiexec -n 8 python train.py --problem imagenet-oord --image_size 32 --n_level 3 --depth 48
--flow_permutation 2 --flow_coupling 1 --seed 0 --learntop --lr 0.001 --n_bits_x 8`. Needs --data_dir (TFRecords)."""
FLAGS = dict(problem="imagenet-oord", image_size=32, n_levels=3, depth=48, flow_permutation="2", flow_coupling="1",
             seed=0, learntop=True, lr=0.001, n_bits_x=8)
TARGET = "test 4.09 bits/dim (paper, Table 2), 8 GPUs"

"""CIFAR-10 as in the paper (Table 2: 3.35 bits/dim) and the original README's command:
`mpiexec -n 8 python train.py --problem cifar10 --image_size 32 --n_level 3 --depth 32 --flow_permutation 2
--flow_coupling 1 --seed 0 --learntop --lr 0.001 --n_bits_x 8` (8 workers: a global batch of 512)."""
FLAGS = dict(problem="cifar10", image_size=32, n_levels=3, depth=32, flow_permutation="2", flow_coupling="1",
             seed=0, learntop=True, lr=0.001, n_bits_x=8)
TARGET = "test 3.35 bits/dim (paper, Table 2), 8 GPUs"

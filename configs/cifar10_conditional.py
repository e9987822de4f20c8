"""Class-conditional CIFAR-10 at 5 bits (qualitative samples per class), the original README's command
`mpiexec -n 8 python train.py --problem cifar10 --image_size 32 --n_level 3 --depth 32 --flow_permutation 2
--flow_coupling 0 --seed 0 --learntop --lr 0.001 --n_bits_x 5 --ycond --weight_y=0.01`."""
FLAGS = dict(problem="cifar10", image_size=32, n_levels=3, depth=32, flow_permutation="2", flow_coupling="0",
             seed=0, learntop=True, lr=0.001, n_bits_x=5, ycond=True, weight_y=0.01)
TARGET = "qualitative: samples of the asked class at 5 bits (no bits/dim published); 8 GPUs"

"""MNIST, zero-padded to 32x32 and tiled to RGB as the original's loader does, with the CIFAR-10 command's model
(the original README names MNIST only for small experiments and gives it no command:
`python train.py --problem mnist --image_size 32 --n_level 3 --depth 32 --flow_permutation 2 --flow_coupling 1
--seed 0 --learntop --lr 0.001 --n_bits_x 8`)."""
FLAGS = dict(problem="mnist", image_size=32, n_levels=3, depth=32, flow_permutation="2", flow_coupling="1",
             seed=0, learntop=True, lr=0.001, n_bits_x=8)
TARGET = "no published figure (neither the paper nor the original README reports MNIST bits/dim)"

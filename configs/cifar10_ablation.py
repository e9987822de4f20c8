"""The paper's CIFAR-10 ablation (Figure 3), the original README's command
`mpiexec -n 8 python train.py --problem cifar10 --image_size 32 --n_level 3 --depth 32 --flow_permutation [0/1/2]
--flow_coupling [0/1] --seed [0/1/2] --learntop --lr 0.001`, here at its 1x1-convolution, additive point; the
other points override --flow_permutation (0 reverse, 1 shuffle), --flow_coupling 1 and --seed."""
FLAGS = dict(problem="cifar10", image_size=32, n_levels=3, depth=32, flow_permutation="2", flow_coupling="0",
             seed=0, learntop=True, lr=0.001)
TARGET = ("Figure 3 of the paper (curves, no single figure): 1x1 conv below shuffle below reverse in test "
          "bits/dim, for additive and affine coupling alike; 8 GPUs")

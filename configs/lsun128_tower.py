"""LSUN tower at 128x128 and 5 bits (the paper's qualitative LSUN samples), the original README's command
`mpiexec -n 40 python train.py --problem lsun --category tower --image_size 128 --n_level 5 --depth 64
--flow_permutation 2 --flow_coupling 0 --seed 0 --learntop --lr 0.001 --n_bits_x 5`. (The README's other size,
96, is not a power of two and never ran in the original either.) Needs --data_dir (TFRecords)."""
FLAGS = dict(problem="lsun", category="tower", image_size=128, n_levels=5, depth=64,
             flow_permutation="2", flow_coupling="0", seed=0, learntop=True, lr=0.001, n_bits_x=5)
TARGET = "qualitative: recognisable tower scenes at 128x128 (no bits/dim published); 40 GPUs"

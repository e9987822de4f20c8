"""LSUN church_outdoor at 64x64 (RealNVP's preprocessing: random 64-crops of 96-pixel images) as in the paper
(Table 2: 2.67 bits/dim) and the original README's command `mpiexec -n 8 python train.py --problem lsun_realnvp
--category church_outdoor --image_size 64 --n_level 3 --depth 48 --flow_permutation 2 --flow_coupling 1 --seed 0
--learntop --lr 0.001 --n_bits_x 8`. Needs --data_dir (TFRecords)."""
FLAGS = dict(problem="lsun_realnvp", category="church_outdoor", image_size=64, n_levels=3, depth=48,
             flow_permutation="2", flow_coupling="1", seed=0, learntop=True, lr=0.001, n_bits_x=8)
TARGET = "test 2.67 bits/dim (paper, Table 2), 8 GPUs"

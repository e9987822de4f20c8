"""CelebA faces at 64x64 and 5 bits on 2 CPU cores in about an hour and a half of CPU time: the face model trained
for this project, `python train.py --problem celeba --image_size 64 --anchor_size 64 --n_levels 4 --depth 8
--width 64 --flow_coupling 0 --learntop --n_bits_x 5 --lr 0.001 --n_batch_train 16 --n_batch_test 50 --n_train 9000
--epochs 16 --epochs_warmup 1 --epochs_full_valid 1 --epochs_full_sample 1 --backprop store --seed 0`, i.e.
`python train.py --config celeba_cpu --data_dir CELEBA --logdir RUN`. Not in the paper.

CELEBA is a folder in the release's layout; the run used its first 10,000 half-size aligned crops with their
attribute rows and no partition file, so 9,000 train (000001-009000) and 1,000 are the test stream. The original's
CelebA choices (additive coupling, 1x1 convolutions, learnt top prior, 5 bits, lr 0.001) at a CPU's size:
4 levels of 8 steps, width 64, 16 faces per step (--anchor_size 64 keeps the batch at 16 at 64 px),
one epoch = one pass over the 9,000 faces (563 steps), warm-up over the first, a test pass and samples every epoch.
The run was started with --epochs 30 and stopped (SIGTERM, right after epoch 15's checkpoint) because a 16th
epoch would not have ended within its wall-clock limit on a machine shared with other jobs; --epochs 16 gives
the same 15 epochs.
configs/celeba_gpu.py is the larger model for one GPU."""
FLAGS = dict(problem="celeba", image_size=64, anchor_size=64, n_levels=4, depth=8, width=64, flow_coupling="0",
             learntop=True, n_bits_x=5, lr=0.001, n_batch_train=16, n_batch_test=50, n_train=9000, epochs=16,
             epochs_warmup=1, epochs_full_valid=1, epochs_full_sample=1, backprop="store", seed=0)
TARGET = ("test 1.513 bits/dim (5-bit) after 15 epochs (8,445 steps of 16 faces, 135,120 images), from 3.740 after "
          "the initialisation and 1.850 after epoch 1; 5,400 s of process CPU time (user + sys) in 76 minutes of wall "
          "time on 2 shared cores; samples at temperature 0.7 are recognisable but distorted, blurry faces")

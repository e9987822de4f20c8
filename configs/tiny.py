"""The smallest useful run, for tests and benchmarks: a 2-level, 2-step, width-16 affine Glow on the 8x8 digits,
4 steps of 64 images per epoch (256 anchored images), a test pass every 2 epochs and samples every 3, no
augmentation and no gradient checkpointing. The same flags as the TINY lists of tests/test_train.py and
tests/test_distributed.py; add --epochs and --logdir."""
FLAGS = dict(problem="digits", dal=0, anchor_size=8, n_levels=2, depth=2, width=16, n_train=256, epochs_warmup=1,
             epochs_full_valid=2, epochs_full_sample=3, flow_coupling="1", learntop=True, gradient_checkpointing=0,
             seed=3, n_batch_init=128)
TARGET = "none: a seconds-long smoke run; test bits/dim only has to fall below its value after initialisation"

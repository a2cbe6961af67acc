"""The priority engine's tests: a package, so pytest names its modules ``signal_priority.test_...``;
the fixed batch of generated cases in test_kernels.py is seeded by that name."""

"""Shared test setup.

Tests compare against float32/float64 references at tight tolerances. On GPU, XLA's default
float32 matmul precision uses TF32 tensor cores (about 3 decimal digits), which would fail those
comparisons for reasons unrelated to the code; the tests therefore run with "highest" matmul
precision everywhere (a no-op on CPU, where float32 dots are exact float32 already).
"""

import jax

jax.config.update("jax_default_matmul_precision", "highest")

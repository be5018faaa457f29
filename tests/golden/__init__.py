"""Golden outputs of the training CLI (see tests/test_golden.py); shared code in cases.py."""

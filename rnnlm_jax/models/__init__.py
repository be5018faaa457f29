"""Model heads built on the recurrent stacks (``lm``: language models)."""

"""One module per stage of the paper's pipeline; each exposes ``STAGE``."""

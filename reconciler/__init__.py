"""pixel: a desired-state engine for machine-learning training data in S3."""

__version__ = "0.1.0"

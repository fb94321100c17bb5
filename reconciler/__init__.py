"""pixel: a desired-state engine for machine-learning training data in S3."""

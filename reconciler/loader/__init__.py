"""The read side: training scripts stream registered datasets by name."""

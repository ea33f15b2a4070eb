"""Training: optimiser, schedule, loss and the loop."""

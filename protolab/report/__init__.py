"""Charts and reports drawn from stored results."""

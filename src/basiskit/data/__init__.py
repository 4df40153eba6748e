"""Market data: the dataset format, validation, alignment onto the hourly grid, the embedded sample."""

"""Result tables, metrics, the run summary and where they are written."""

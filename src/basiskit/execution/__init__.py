"""Execution: orders become venue actions that change balances, with their costs."""

"""The event-driven loop, clocks, the run object and the event log."""

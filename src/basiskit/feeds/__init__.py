"""What a session observes each hour: a recorded dataset replayed (replay.py), or the venues and the chain
read live (live.py)."""

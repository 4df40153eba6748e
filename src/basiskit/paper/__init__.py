"""Paper trading: the engine driven hour by hour by the paper clock over a feed, every tick committed."""

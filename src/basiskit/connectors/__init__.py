"""Clients of the outside world, shared by paper and live feeds, `data fetch` and live accounts: exchanges
through ccxt (exchanges.py) and Ethereum through web3 (chain.py)."""

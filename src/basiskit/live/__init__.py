"""The fund's real accounts: what they are (accounts.yaml) and what the venues and the chain say they hold."""

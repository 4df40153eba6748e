"""Instruments, the position book, share-class valuation and PnL attribution."""

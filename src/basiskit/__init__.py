"""basiskit: backtest the fund's basis strategies with exact accounting."""
__version__ = "0.1.0"

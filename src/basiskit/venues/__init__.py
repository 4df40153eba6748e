"""Protocol and exchange models: what each venue does to balances, and what it costs."""

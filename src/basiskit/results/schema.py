"""The operational store's tables, one versioned schema for every process that shares a deployment's store (runs,
sweeps and stress tests; paper and live sessions with their ticks, orders, journal, alerts, webhook outbox and
leases). Types are written once (VARCHAR, INTEGER, BIGINT, DOUBLE, BOOLEAN, TIMESTAMPTZ, JSON) and mapped to each
backend by results/sql.py. A table's per-tick analytics (a run's ticks and events) are Parquet files
(results/analytics.py), not tables.

A new version appends to VERSIONS; a store opened by an older release than its schema refuses to write to it.
"""

from __future__ import annotations

RUNS = """
CREATE TABLE IF NOT EXISTS runs (
  run_id VARCHAR PRIMARY KEY, mode VARCHAR, strategy VARCHAR, share_class VARCHAR, status VARCHAR,
  source VARCHAR, created_at TIMESTAMPTZ, started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ,
  window_start TIMESTAMPTZ, window_end TIMESTAMPTZ, progress DOUBLE, error VARCHAR,
  config_hash VARCHAR, data_hash VARCHAR, config JSON, request JSON, summary JSON, columns JSON);
CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at);
"""
SWEEPS = """
CREATE TABLE IF NOT EXISTS sweeps (
  sweep_id VARCHAR PRIMARY KEY, mode VARCHAR, status VARCHAR, source VARCHAR, created_at TIMESTAMPTZ,
  started_at TIMESTAMPTZ, finished_at TIMESTAMPTZ, progress DOUBLE, n_runs INTEGER, n_done INTEGER,
  n_failed INTEGER, error VARCHAR, request JSON, base_config JSON, params JSON, windows JSON, objective VARCHAR,
  constraints JSON, best JSON, wall_seconds DOUBLE);
CREATE TABLE IF NOT EXISTS sweep_runs (
  sweep_id VARCHAR, run_index INTEGER, config_index INTEGER, window_start TIMESTAMPTZ, window_end TIMESTAMPTZ,
  params JSON, final_nav DOUBLE, total_return DOUBLE, apy DOUBLE, max_drawdown DOUBLE, sharpe DOUBLE,
  min_health_factor DOUBLE, liquidations INTEGER, transaction_costs DOUBLE, rebalances INTEGER,
  reconciliation_max_residual DOUBLE, objective DOUBLE, constraints_met BOOLEAN, error VARCHAR, command VARCHAR,
  run_id VARCHAR, summary JSON);
CREATE INDEX IF NOT EXISTS sweep_runs_sweep ON sweep_runs (sweep_id, run_index);
"""
STRESS = """
CREATE TABLE IF NOT EXISTS stress_tests (
  stress_id VARCHAR PRIMARY KEY, mode VARCHAR, status VARCHAR, source VARCHAR, created_at TIMESTAMPTZ,
  finished_at TIMESTAMPTZ, error VARCHAR, request JSON, result JSON, baseline_run_id VARCHAR,
  scenario_run_id VARCHAR, grid_sweep_id VARCHAR);
"""
PAPER = """
CREATE TABLE IF NOT EXISTS paper_sessions (
  name VARCHAR PRIMARY KEY, mode VARCHAR, status VARCHAR, feed VARCHAR, created_at TIMESTAMPTZ,
  updated_at TIMESTAMPTZ, window_start TIMESTAMPTZ, window_end TIMESTAMPTZ, n_points INTEGER, config JSON,
  options JSON, error VARCHAR, results_dir VARCHAR, summary JSON);
CREATE TABLE IF NOT EXISTS paper_ticks (
  session VARCHAR, tick INTEGER, timestamp TIMESTAMPTZ, delivery VARCHAR, quantities VARCHAR,
  nav DOUBLE, nav_usd DOUBLE, risk JSON, PRIMARY KEY (session, tick));
CREATE TABLE IF NOT EXISTS paper_events (
  session VARCHAR, seq INTEGER, tick INTEGER, timestamp TIMESTAMPTZ, type VARCHAR, message VARCHAR,
  details JSON, PRIMARY KEY (session, seq));
CREATE TABLE IF NOT EXISTS paper_orders (
  session VARCHAR, seq INTEGER, tick INTEGER, timestamp TIMESTAMPTZ, venue VARCHAR, instrument VARCHAR,
  side VARCHAR, size DOUBLE, price DOUBLE, reason VARCHAR, PRIMARY KEY (session, seq));
CREATE TABLE IF NOT EXISTS paper_alerts (
  session VARCHAR, seq INTEGER, tick INTEGER, timestamp TIMESTAMPTZ, kind VARCHAR, message VARCHAR,
  details JSON, PRIMARY KEY (session, seq));
CREATE TABLE IF NOT EXISTS paper_deliveries (
  session VARCHAR, seq INTEGER, delivered_at TIMESTAMPTZ, attempts INTEGER, last_error VARCHAR,
  PRIMARY KEY (session, seq));
"""
LIVE = """
CREATE TABLE IF NOT EXISTS live_sessions (
  name VARCHAR PRIMARY KEY, mode VARCHAR, accounts VARCHAR, config JSON, status VARCHAR, created_at TIMESTAMPTZ,
  updated_at TIMESTAMPTZ, error VARCHAR, webhook VARCHAR, execute VARCHAR, halted BOOLEAN, kill_reason VARCHAR,
  kill_done BOOLEAN, heartbeat_epoch DOUBLE, heartbeat_s DOUBLE, holder VARCHAR, lease_keys JSON,
  dead_alerted DOUBLE);
CREATE TABLE IF NOT EXISTS live_ticks (
  session VARCHAR, tick INTEGER, timestamp TIMESTAMPTZ, block BIGINT, nav_usd DOUBLE, nav DOUBLE, book JSON,
  reconciliation JSON, plan JSON, read_epoch DOUBLE, PRIMARY KEY (session, tick));
CREATE TABLE IF NOT EXISTS live_orders (
  session VARCHAR, seq INTEGER, tick INTEGER, timestamp TIMESTAMPTZ, venue VARCHAR, instrument VARCHAR,
  side VARCHAR, size DOUBLE, price DOUBLE, reason VARCHAR, client_id VARCHAR, status VARCHAR, notional_usd DOUBLE,
  filled DOUBLE, average DOUBLE, fee DOUBLE, created_epoch DOUBLE, updated_at TIMESTAMPTZ, booked_tick INTEGER,
  moves JSON, action VARCHAR, asset VARCHAR, to_asset VARCHAR, bundle VARCHAR, trigger VARCHAR, safety BOOLEAN,
  counted_usd DOUBLE, read_epoch DOUBLE, approved_epoch DOUBLE, note VARCHAR, PRIMARY KEY (session, seq));
CREATE INDEX IF NOT EXISTS live_orders_client ON live_orders (session, client_id);
CREATE TABLE IF NOT EXISTS live_order_log (
  session VARCHAR, seq INTEGER, client_id VARCHAR, logged_at TIMESTAMPTZ, step VARCHAR, status VARCHAR, details JSON,
  PRIMARY KEY (session, seq));
CREATE TABLE IF NOT EXISTS live_alerts (
  session VARCHAR, seq INTEGER, tick INTEGER, timestamp TIMESTAMPTZ, kind VARCHAR, message VARCHAR, details JSON,
  PRIMARY KEY (session, seq));
CREATE TABLE IF NOT EXISTS live_leases (
  key VARCHAR PRIMARY KEY, session VARCHAR, holder VARCHAR, heartbeat_epoch DOUBLE);
CREATE TABLE IF NOT EXISTS live_deliveries (
  session VARCHAR, seq INTEGER, delivered_at TIMESTAMPTZ, attempts INTEGER, last_error VARCHAR,
  PRIMARY KEY (session, seq));
"""

# (version, DDL): applied in order, each once, in one transaction, recorded in schema_version
VERSIONS: list[tuple[int, str]] = [
    (1, RUNS + SWEEPS + STRESS + PAPER + LIVE),
    (2, "ALTER TABLE stress_tests ADD COLUMN unshocked_sweep_id VARCHAR;"),  # the grid's unshocked configs
]
CURRENT = VERSIONS[-1][0]


def statements(ddl: str) -> list[str]:
    return [s.strip() for s in ddl.split(";") if s.strip()]


def tables() -> list[str]:
    """Every table of the current schema, in creation order."""
    return [s.split()[5] for _, ddl in VERSIONS for s in statements(ddl) if s.upper().startswith("CREATE TABLE")]


def column_types(table: str) -> dict[str, str]:
    """A table's columns and their schema types, in order (those a later version added last)."""
    out: dict[str, str] = {}
    found = False
    for _, ddl in VERSIONS:
        for s in statements(ddl):
            words = s.split()
            if s.upper().startswith("CREATE TABLE") and words[5] == table:
                found = True
                for part in s[s.index("(") + 1: s.rindex(")")].split(","):
                    col = part.split()
                    if len(col) >= 2 and col[0].upper() != "PRIMARY" and not col[0].endswith(")"):
                        out[col[0]] = col[1]
            elif s.upper().startswith("ALTER TABLE") and words[2] == table and words[3].upper() == "ADD":
                out[words[5]] = words[6]
    if not found:
        raise KeyError(table)
    return out

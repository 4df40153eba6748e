"""What paper and live sessions share: alerts, the webhook outbox, stopping on a signal, stored times."""

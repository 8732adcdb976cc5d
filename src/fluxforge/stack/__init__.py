"""Local-process supervision of the Kafka stack (`fluxforge stack up|down|status`)."""

"""Running the relay: the pipeline of one poll, the Relay that wires the stages, the daemon, alerts, metrics."""

"""Redis adapters: shared state for stateless replicas."""

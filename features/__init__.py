"""flopcast.features: see ARCHITECTURE.md."""

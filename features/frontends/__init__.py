"""flopcast.features.frontends: see ARCHITECTURE.md."""

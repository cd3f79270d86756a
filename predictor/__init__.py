"""flopcast.predictor: see ARCHITECTURE.md."""

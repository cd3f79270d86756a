"""flopcast.features.formulas: see ARCHITECTURE.md."""

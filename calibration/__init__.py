"""flopcast.calibration: see ARCHITECTURE.md."""

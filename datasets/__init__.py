"""flopcast.datasets: see ARCHITECTURE.md."""

"""Episode store, replay/demo buffers, mixer, export."""

"""File and TFDS sources for the tasks."""

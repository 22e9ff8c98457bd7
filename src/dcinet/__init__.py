"""dcinet."""

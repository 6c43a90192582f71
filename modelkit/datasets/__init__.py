"""modelkit package."""

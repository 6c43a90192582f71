"""The modelkit command line."""

"""chaos_watch stage of ChaosGen."""

"""chaos_suggest stage of ChaosGen."""

"""chaos_report stage of ChaosGen."""

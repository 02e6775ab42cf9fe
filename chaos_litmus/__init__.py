"""chaos_litmus stage of ChaosGen."""

"""chaos_inventory stage of ChaosGen."""

"""Control tower: funnel metrics, anomaly detection, rules that act."""

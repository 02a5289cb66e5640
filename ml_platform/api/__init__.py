"""REST API (DRF): one APIView per operation (shared/STYLE.md R5)."""

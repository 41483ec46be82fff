"""`make bench`: SmartFlow measured under load against ceilings on the same server."""

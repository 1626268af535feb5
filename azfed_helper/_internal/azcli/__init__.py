"""Keeping the Azure CLI logged in: what az holds, running az, logging in, shell hooks."""

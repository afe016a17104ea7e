"""What stands between a message and GLM, and what protects GLM and the owner's money:
the access policy, group admins, limits and quotas, update dedup, the circuit breaker and
owner alerts."""

"""Redis plumbing every part shares: the key scheme (every key is built in `keys`),
clients for one server, Sentinel or Cluster, "once per interval" claims and background
loops."""

"""What the load tests share: servers, load generators, bodies, measuring, reports."""

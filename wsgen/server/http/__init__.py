"""The HTTP port: the original service's endpoints, and one module per other job."""

"""An example ohobench plugin: a Sobol search, a cosine learning-rate schedule, a wine task."""

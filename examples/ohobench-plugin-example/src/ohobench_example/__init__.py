"""An example ohobench plugin: a Sobol search, a cosine learning-rate schedule, hypergradient
descent on the momentum and learning rate, a wine task."""

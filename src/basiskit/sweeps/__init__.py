"""Many runs of one mode over a grid or a search of parameters, on a local pool or Ray."""

"""Generated documentation: the parameter reference from the nodes' parameter tables."""

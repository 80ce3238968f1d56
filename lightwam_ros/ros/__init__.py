"""The ROS boundary: conversions between ROS messages and the core's types, stamps (integer
nanoseconds), diagnostics, message type lookup, the nodes' parameter schemas and declaration
helpers, the node registry, the package's parameter files and the topics a run reads and
publishes; no node logic."""

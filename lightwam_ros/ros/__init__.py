"""The ROS boundary: conversions between ROS messages and the core's types, stamps (integer
nanoseconds), diagnostics, message type lookup and parameter declaration helpers; no node logic."""

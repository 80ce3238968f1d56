"""Benchmarks: the policy alone (bench) and the whole ROS pipeline (bench_ros)."""

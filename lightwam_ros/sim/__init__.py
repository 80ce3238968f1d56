"""Simulated robots behind one small interface (``base.Simulator``), so a ROS bridge, the
closed-loop evaluation and the scripted demonstrations drive LIBERO and ALOHA the same way.
No ROS imports; the simulator packages are imported only when a simulator is built."""

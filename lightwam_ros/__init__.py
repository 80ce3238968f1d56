"""Light-WAM as a closed-loop ROS 2 controller.

The generated message module (``lightwam_ros.msg``) is installed by CMake into the environment's
site-packages, while the Python sources may live elsewhere (an editable install or a colcon
workspace overlay): extend the package path so both halves import as one package.
"""

from pkgutil import extend_path

__path__ = extend_path(__path__, __name__)
__version__ = "0.1.0"

"""ament_python package that is also pip-installable.

Extras keep the car free of torch: the node needs only the runtime extra (or the distribution's
python3-numpy / python3-opencv / python3-yaml plus onnxruntime) and the system rclpy.
"""

from glob import glob

from setuptools import find_packages, setup

PACKAGE = "unified_perception"

ROS_WHEELS = [  # ROS 2 Kilted from PyPI, for machines without a ROS install
    "ros-kilted-rclpy[fastrtps]==9.1.2",
    "ros-sensor-msgs>=5.5.1", "ros-std-msgs>=5.5.1", "ros-geometry-msgs>=5.5.1",
    "ros-nav-msgs>=5.5.1", "ros-visualization-msgs>=5.5.1", "ros-diagnostic-msgs>=5.5.1",
    "ros-lifecycle-msgs>=2.3.0",
]

setup(
    name=PACKAGE,
    version="0.1.0",
    description="One multi-task network per camera frame (depth, segmentation, motion, pose, "
                "scene flow, steering) for ROS 2, with its training, export, replay and evaluation",
    license="Apache-2.0",
    python_requires=">=3.10",
    packages=find_packages(exclude=["test", "test.*"]),
    package_data={"unified_perception.data": ["*.yaml"]},
    data_files=[
        ("share/ament_index/resource_index/packages", [f"resource/{PACKAGE}"]),
        (f"share/{PACKAGE}", ["package.xml"]),
        (f"share/{PACKAGE}/launch", glob("launch/*.py")),
        (f"share/{PACKAGE}/config", glob("config/*.yaml") + glob("config/*.xml")),
        (f"share/{PACKAGE}/rviz", glob("rviz/*.rviz")),
        (f"share/{PACKAGE}/models", glob("models/*.onnx") + glob("models/*.md") + ["models/.gitkeep"]),
    ],
    install_requires=["numpy>=1.24", "pyyaml>=6.0"],
    extras_require={
        "runtime": ["numpy>=1.24", "onnxruntime>=1.20", "opencv-python-headless>=4.8", "pyyaml>=6.0"],
        "gpu": ["onnxruntime-gpu>=1.20", "opencv-python-headless>=4.8"],
        "data": ["rosbags>=0.10", "opencv-python-headless>=4.8", "tqdm>=4.60"],
        "sim": ["rosbags>=0.10", "scipy>=1.10", "tqdm>=4.60", "opencv-python-headless>=4.8"],
        "train": ["torch==2.13.0", "onnx>=1.17", "onnxscript>=0.2", "tensorboard>=2.15",
                  "tqdm>=4.60", "rosbags>=0.10", "opencv-python-headless>=4.8",
                  "onnxruntime>=1.20", "scipy>=1.10"],
        "deploy": ["onnx>=1.17", "onnxruntime>=1.20", "rosbags>=0.10", "opencv-python-headless>=4.8"],
        "eval": ["matplotlib>=3.7", "pillow>=9.1", "rosbags>=0.10", "tqdm>=4.60",
                 "opencv-python-headless>=4.8"],
        "ros": ROS_WHEELS,
        "dev": ["pytest>=8", "pytest-timeout>=2.3", "colcon-common-extensions>=0.3",
                "matplotlib>=3.7", "evo>=1.30", "hypothesis>=6.100"],
    },
    zip_safe=True,
    entry_points={
        "console_scripts": [
            "perception_node = unified_perception.ros.node_main:entry",
            "unified-perception = unified_perception.cli:main",
        ],
    },
)

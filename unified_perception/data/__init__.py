"""Data set readers that yield numpy samples: rosbags, KITTI raw, Cityscapes."""

"""Task heads, one per module: depth, panoptic segmentation, pose, motion, steering."""

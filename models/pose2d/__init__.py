"""Top-down 2D keypoint models of the seed papers: TransPose, TokenPose and UniFormer.

Each maps a person crop [B, 3, 256, 192] (RGB, ImageNet mean/std) to 17 COCO heatmaps [B, 17, 64, 48].
"""

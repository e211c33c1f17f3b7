"""Data preparation for training: image augmentation (:mod:`fastconv.preprocessing.image`)."""

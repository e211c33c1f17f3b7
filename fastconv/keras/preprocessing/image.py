"""``keras.preprocessing.image`` at its Keras import path: the implementation is
fastconv.preprocessing.image (ImageDataGenerator on fastconv's warp kernel)."""
from fastconv.preprocessing.image import *  # noqa: F401,F403
from fastconv.preprocessing.image import __all__  # noqa: F401

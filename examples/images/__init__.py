"""Images: Gaussian-blur a folder of images on workers, with Pillow."""

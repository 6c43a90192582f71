"""modelkit.preprocessing: Keras's preprocessing tools (`keras.preprocessing` paths).

`sequence` (pad_sequences, skipgrams, TimeseriesGenerator), `text` (Tokenizer, one_hot,
hashing_trick) and `image` (ImageDataGenerator, load_img and the transform functions), with
Keras 2.3's behaviour and numbers. Image files need Pillow (`pip install modelkit[image]`).
"""

from modelkit.preprocessing import image, sequence, text

__all__ = ["image", "sequence", "text"]

"""The distilled students: the network (net), the in-graph token front of tokens-cnn (token_front),
training (train), TFLite export (export), the LiteRT runner (runtime), the cached stage and its
self-training rounds (stage, rounds), and the predictor. TensorFlow is imported inside functions."""

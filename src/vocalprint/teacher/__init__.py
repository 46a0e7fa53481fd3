"""The pretrained teacher (BirdNET V2.4; Perch v2 from a folder): label lists and species matching
(labels), the flatbuffer rewrite that exposes the embedding (surgery), the one LiteRT runtime
(runtime), the runners (birdnet, perch), chunk-to-window pooling (windows), quantised variants
(quantize), the cached outputs (stage) and the predictor."""

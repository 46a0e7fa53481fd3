"""vocalprint tokens: Faiss K-means codebooks (codebook), Word2Vec token vectors (w2v), pooling and
window features (pool, features), heads and their training (heads, train), the frame-level
naive-Bayes model tokens-nb (nb), and the predictors of these models."""

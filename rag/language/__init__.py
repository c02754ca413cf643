"""The knowledge of Chinese policy language: the vocabulary loader (vocab/), normalisation and the jieba tokenizer, places, numerals and sentences, token counts."""

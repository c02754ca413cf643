"""Where passages live: the Store interfaces (base.py), the embedded segment store, PostgreSQL, BM25 and dense search, the document library."""

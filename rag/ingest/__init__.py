"""Documents in: converting files and pages to text, titles and document facts, section-aware chunking."""

"""The HTTP surface: JSON API routes, login and proxy headers, feedback, conversations, the original-document view."""

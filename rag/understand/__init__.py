"""What a question asks: the understood Query, follow-ups resolved against the conversation, suggested questions."""

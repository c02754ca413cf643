"""From passages to one Answer: eligibility and evidence (grounding), answer plans, the pipeline of named steps, the vanilla recipe."""

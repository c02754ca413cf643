"""The model interfaces and their adapters: embedders, LLM backends, prompt files, the LangChain edge."""

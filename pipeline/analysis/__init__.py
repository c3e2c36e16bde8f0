"""The inter-brain analyses (METHODS.md sections 2-5): scikit-learn estimators and session-level runners."""

"""Prompt-repo model: marked text prompts, structured configs, and the policy that guards both."""

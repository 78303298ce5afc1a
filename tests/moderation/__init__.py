"""The moderation service: rule files, the classifier, decisions by reply."""

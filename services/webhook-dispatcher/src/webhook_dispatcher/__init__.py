"""Webhook dispatcher: fans every change out to the restaurant's own systems by signed webhooks."""
SCHEMA = "webhook_dispatcher"

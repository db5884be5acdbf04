"""Policies over Result streams: resources, breakers, retries and error reports."""

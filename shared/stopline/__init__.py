"""stopline: stop CodeArts builds and DataArts jobs from webhooks and queues, exactly once."""

"""The message bus (fedora-messaging over AMQP), as an outside system.

- :mod:`.settings`: the fedora-messaging configuration file and Fortnight's
  ``[consumer_config]`` in it.
- :mod:`.messages`: the announcement message classes (the ``fedora.messages`` entry
  points), whose bodies are pydantic models with generated JSON schemas.
- :mod:`.client`: publishing (with the one retry policy) and consuming (fedora-messaging's
  Twisted service).

What the bus triggers and what it announces are stages: ``pipeline.stages.listen`` and
``pipeline.stages.announce``. Nothing here is imported at start-up: fedora-messaging, Twisted
and pika are slow to import, so the tasks that use the bus import these modules inside the task.
"""

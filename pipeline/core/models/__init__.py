"""Pydantic models: the single source of the manifest formats and their JSON Schema.

This layer knows nothing of files, git or keys. Every model is strict, frozen and
forbids unknown fields, so anything that parses is valid. Signed payloads carry
no floats (OLPC canonical JSON has none): sizes are bytes, times are integer
seconds or UTC timestamps as strings.

- :mod:`.common`: field types, the strict base model, the envelope, the trust file and
  the ``Manifest`` base class;
- :mod:`.manifests`: the manifest kinds (compose, test result, verdict, tracker event,
  release, revocation, cloud images) and their registry, ``KINDS``.
"""
